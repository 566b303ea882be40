"""Training and inference speed of every registered model, next to segmentation_models_pytorch's U-Net.

`make bench` (`python -m saltnet.performance.bench --out results/bench.json`) times, for each model in
`saltnet.models.MODELS` and for smp's `Unet('resnet34')` (the reference a user would pick instead),
at a preset's `train.size` and `finetune.size` (`--preset`, resolved as a run resolves it): a training
step (forward, symmetric Lovász loss on a random 0/1 target with the preset's `aux_weight`, backward,
Adam step) and an inference forward, in fp32 and under bf16 autocast,
channels_last, random init. Each row names the machine it ran on, so every speed claim can cite one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable

import torch
from torch import nn

from saltnet.config.resolve import ConfigError, parse_overrides, preset_path, resolve_config
from saltnet.models import MODELS, build_model
from saltnet.runtime.atomic import write_json
from saltnet.runtime.precision import cpu_info
from saltnet.training.learner import training_loss

__all__ = ["SMP_NAME", "machine_info", "time_steps", "make_train_step", "make_infer_step", "bench_model", "add_ratios",
           "format_table", "parse_with_preset", "run", "main"]

SMP_NAME = "smp_unet_resnet34"
MODES = ("train", "infer")
PRECISIONS = ("fp32", "bf16")
BENCH_LOSS = "symmetric_lovasz"  # the loss of a timed training step (the Lovász stage's)
WARMUP_STEPS = 1  # the first step builds oneDNN/cuDNN primitives and allocates; timed only if it alone hits max_seconds


def _build_smp(size: int) -> nn.Module:
    import segmentation_models_pytorch as smp  # optional extra `bench`: checked in _builders

    return smp.Unet("resnet34", encoder_weights=None, classes=1)  # None: random init, no download


def _builders(names: list[str]) -> dict[str, Callable[[int], nn.Module]]:
    """name -> builder(size); smp is left out, with a note on stderr, when it is not installed."""
    builders = {name: (lambda size, name=name: build_model(name, "none", size)) for name in names if name in MODELS}
    if SMP_NAME in names:
        try:
            import segmentation_models_pytorch  # noqa: F401
            builders[SMP_NAME] = _build_smp
        except ImportError:
            print(f"note: segmentation_models_pytorch is not installed, {SMP_NAME} is skipped "
                  "(pip install -e '.[bench]')", file=sys.stderr)
    return builders


def machine_info(device: torch.device) -> dict:
    """device (cpu or the CUDA name), CPU facts, native_bf16 of the device computing, threads,
    load_avg_1m at the start (rows timed on a busy machine mislead)."""
    info = dict(cpu_info(), threads=torch.get_num_threads(), device="cpu",
                load_avg_1m=round(os.getloadavg()[0], 2))
    if device.type == "cuda":
        info.update(device=torch.cuda.get_device_name(device), native_bf16=torch.cuda.is_bf16_supported())
    return info


def time_steps(step: Callable[[], None], sync: Callable[[], None], min_steps: int, min_seconds: float,
               max_seconds: float, compiled: bool = False) -> tuple[int, float]:
    """Warm up, then time `step` until min_steps and min_seconds are reached -> (steps, seconds).

    The row stops early once it has run max_seconds, warm-up included, but times at least one step:
    a step of emulated bf16 can take longer than max_seconds by itself. A warm-up that alone exceeds
    max_seconds is the measurement (one step, a slight underestimate of the speed), so a slow row
    costs one step, not two. A `compiled` model's warm-up (the compilation: a minute or more) is never
    the measurement, and the row's max_seconds count from its end.
    """
    row_start = time.perf_counter()
    for _ in range(WARMUP_STEPS + compiled):  # a second step: compiled code may re-specialise once
        step()
    sync()
    if compiled:
        row_start = time.perf_counter()
    elif WARMUP_STEPS and time.perf_counter() - row_start >= max_seconds:
        return WARMUP_STEPS, time.perf_counter() - row_start
    steps, start = 0, time.perf_counter()
    while True:
        step()
        sync()
        steps, now = steps + 1, time.perf_counter()
        if now - row_start >= max_seconds or (steps >= min_steps and now - start >= min_seconds):
            return steps, now - start


def make_train_step(model: nn.Module, x: torch.Tensor, target: torch.Tensor, bf16: bool,
               loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
               aux_weight: float, aux_resolution: str, augment=None) -> Callable[[], None]:
    """x: (N, 3, S, S) float; target: (N, 1, S', S') in {0,1} -> one forward+loss+backward+Adam step
    (with the training loss wrapper: a deep-supervised model's auxiliary outputs cost what they cost),
    after the batch augmentation where `augment` (saltnet.data.augment.AugmentSettings) is given."""
    from saltnet.data.augment import augment_batch

    loss_fn = training_loss(loss, model, aux_weight, aux_resolution)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        xb, (yb,) = augment_batch(x, [target], augment) if augment is not None else (x, [target])
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            value = loss_fn(model(xb).float(), yb)
        value.backward()
        optimizer.step()
    return step


def make_infer_step(model: nn.Module, x: torch.Tensor, bf16: bool) -> Callable[[], None]:
    """x: (N, 3, S, S) float -> one forward under inference_mode."""
    def step():
        with torch.inference_mode(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            model(x)
    return step


def bench_model(model: nn.Module, size: int, device: torch.device, args: argparse.Namespace,
                input_size: int | None = None, compiled: bool = False) -> list[dict]:
    """Rows for one built model at `size`, every selected mode and precision; inputs (N, 3, I, I) with
    I = input_size: `size`, or the native 101 px for a model that pads to `size` itself, as in the pipeline.
    compiled: the model was torch.compile'd (its warm-up is not timed)."""
    input_size = input_size or size
    model = model.to(device).to(memory_format=torch.channels_last)
    x = torch.randn(args.batch_size, 3, input_size, input_size, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        out_shape = model.eval()(x[:1]).shape[1:]
    target = torch.randint(0, 2, (args.batch_size, *out_shape), device=device).float()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    for mode in args.modes:
        model.train(mode == "train")
        for precision in args.precisions:
            bf16 = precision == "bf16"
            step = (make_train_step(model, x, target, bf16, BENCH_LOSS, args.aux_weight, args.aux_resolution)
                    if mode == "train" else make_infer_step(model, x, bf16))
            steps, seconds = time_steps(step, sync, args.min_steps, args.min_seconds, args.max_seconds, compiled)
            rows.append(dict(mode=mode, precision=precision, size=size, input_size=input_size,
                             batch_size=args.batch_size, img_per_s=steps * args.batch_size / seconds,
                             steps=steps, seconds=seconds, aux_weight=args.aux_weight,
                             aux_resolution=args.aux_resolution))
    return rows


def add_ratios(rows: list[dict]) -> list[dict]:
    """Set ratio_to_smp: img/s over smp's at the same mode, precision and size (None without one)."""
    smp = {(r["mode"], r["precision"], r["size"]): r["img_per_s"] for r in rows if r["model"] == SMP_NAME}
    for row in rows:
        ref = smp.get((row["mode"], row["precision"], row["size"]))
        row["ratio_to_smp"] = row["img_per_s"] / ref if ref else None
    return rows


def _sort_key(row: dict) -> tuple:
    return MODES.index(row["mode"]), row["size"], PRECISIONS.index(row["precision"]), row["model"]


def format_table(rows: list[dict], m: dict) -> str:
    """The machine line (`m`: machine_info), then a markdown table sorted by mode, size, precision, model."""
    lines = [f"machine: {m['device']}; CPU {m['cpu_model']} ({m['cpu_capability']}); native bf16: "
             f"{m['native_bf16']}; threads: {m['threads']}; load average at start: "
             f"{m['load_avg_1m']}; torch {torch.__version__}",
             "", "| model | mode | precision | size | batch | img/s | steps | seconds | vs smp |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=_sort_key):
        size = r["size"] if r["input_size"] == r["size"] else f"{r['size']} (input {r['input_size']})"
        ratio = "" if r["ratio_to_smp"] is None else f"{r['ratio_to_smp']:.2f}x"
        lines.append(f"| {r['model']} | {r['mode']} | {r['precision']} | {size} | {r['batch_size']} | "
                     f"{r['img_per_s']:.1f} | {r['steps']} | {r['seconds']:.2f} | {ratio} |")
    return "\n".join(lines)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    names = [*MODELS, SMP_NAME]
    p = argparse.ArgumentParser(prog="python -m saltnet.performance.bench", description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="cpu",
                   help="a preset's name (workflow/presets) or a config file: sizes from its train.size and "
                        "finetune.size, its aux_weight and aux_resolution (default: cpu)")
    add_config_option(p)
    p.add_argument("--sizes", type=_positive_int, nargs="+", help="image sizes in px (overrides the preset's)")
    p.add_argument("--models", nargs="+", choices=names, default=names, metavar="MODEL",
                   help=f"default: all of {', '.join(names)}")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    p.add_argument("--batch-size", type=_positive_int, default=16)
    p.add_argument("--min-steps", type=_positive_int, default=3, help="timed steps at least (after 1 warm-up step)")
    p.add_argument("--min-seconds", type=float, default=2.0, help="timed seconds at least")
    p.add_argument("--max-seconds", type=float, default=20.0,
                   help="stop a row after this, warm-up included, even at 1 timed step")
    p.add_argument("--compile", action="store_true",
                   help="also time each model torch.compile'd (rows named MODEL+compile; compiling takes "
                        "minutes on a CPU)")
    p.add_argument("--out", help="write the rows as a JSON list here")
    return p


def run(args: argparse.Namespace, sizes: list[int], device: torch.device, machine: dict) -> list[dict]:
    """One row per selected model, size, mode and precision, with the machine's fields."""
    rows = []
    for name, build in _builders(args.models).items():
        for size in sizes:
            torch.manual_seed(0)
            try:
                model = build(size)
            except ValueError as err:  # e.g. a size below the model's minimum
                print(f"note: {name} at {size} px skipped: {err}", file=sys.stderr)
                continue
            native = MODELS[name].input_size(size, 101) if name in MODELS else size
            for compiled in (False, True)[: 1 + args.compile]:
                if compiled:
                    model.compile()  # in place, as the pipeline's config compile: true does
                label = f"{name}+compile" if compiled else name
                for row in bench_model(model, size, device, args, native, compiled):
                    rows.append({"model": label, **row, **machine})
                    print(f"{label} {row['mode']} {row['precision']} {size} px: {row['img_per_s']:.1f} img/s",
                          file=sys.stderr, flush=True)
            del model
    return add_ratios(rows)


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """--config KEY=VALUE ...: the preset's keys overridden as with `snakemake --config`."""
    parser.add_argument("--config", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override the preset's keys as snakemake --config does, e.g. aux_resolution=level")


def parse_with_preset(parser: argparse.ArgumentParser, argv: list[str] | None) -> tuple[argparse.Namespace, dict]:
    """Parse argv with `parser` (which has --preset and --config) -> (args, the preset's resolved config,
    --config's key=value entries applied as `snakemake --config` applies them); a bad preset or entry is
    the parser's error."""
    args = parser.parse_args(argv)
    try:
        return args, resolve_config([preset_path(args.preset)], parse_overrides(args.config))
    except ConfigError as err:
        parser.error(str(err))


def main(argv: list[str] | None = None) -> list[dict]:
    """Measure on CUDA if there is a GPU, else on the CPU; print the table, write --out; return the rows."""
    args, config = parse_with_preset(_parser(), argv)
    args.aux_weight, args.aux_resolution = config["aux_weight"], config["aux_resolution"]
    sizes = list(dict.fromkeys(args.sizes or [config["train"]["size"], config["finetune"]["size"]]))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    machine = machine_info(device)
    if device.type == "cpu" and machine["load_avg_1m"] > 0.5 * (os.cpu_count() or 1):
        print(f"note: load average {machine['load_avg_1m']} on {os.cpu_count()} cores: other processes will "
              "slow these timings down", file=sys.stderr)
    rows = run(args, sizes, device, machine)
    print(format_table(rows, machine))
    if args.out:
        write_json(args.out, rows)
    return rows


if __name__ == "__main__":
    main()
