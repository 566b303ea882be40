"""`make gpu-check`: on a GPU machine, in a few minutes, whether the competition preset runs there and what it costs.

1. The benchmark (`saltnet.performance.bench`) on the device: the preset's model, resunet_scse and smp's U-Net (if
   installed) at the preset's two sizes, train and infer, fp32 and bf16; then the preset's model
   torch.compile'd at the first size (the config key `compile` is worth turning on only where it wins).
2. One fold of the competition preset, from random init (GPU nodes may have no internet for ImageNet
   weights), on synthetic data in the competition layout (`saltnet.data.demo`, as many images as the real
   training set): a few epochs at the first stage's size, then at the second's from those weights, each
   through the pipeline's own `train_fold`; then flip-TTA prediction of the fold's images.

Prints, per stage: images per second, seconds per epoch, peak GPU memory and the share of the stage's
time spent outside forward/backward (data, optimiser step, metric, checkpoints, callbacks); exits 1
on a non-finite loss or a prediction of the wrong shape. `--tiny` runs the same code at toy sizes on
whatever device there is (the CPU test in tests/test_gpu_options.py, with `--model resunet_scse`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from fastai.callback.core import Callback

from saltnet.config.resolve import preset_path, resolve_config
from saltnet.config.settings import TrainSettings, settings_of
from saltnet.data.demo import make_demo_data
from saltnet.data.folds import fold_indices, split_folds
from saltnet.data.pack import PackedData, pack_competition
from saltnet.inference.predict import predict_probs
from saltnet.models import get_model_spec
from saltnet.models.modelfile import load_model, save_model_file
from saltnet.performance import bench
from saltnet.runtime.precision import resolve_bf16
from saltnet.training.callbacks import NonFiniteLossError
from saltnet.training.fold import train_fold

__all__ = ["ComputeTimer", "StageReport", "run_stage", "check_prediction", "main"]

TINY = dict(n_train=40, n_test=8, sizes=(32, 48), epochs=(1, 1), batch_sizes=(8, 8))


class ComputeTimer(Callback):
    """Seconds of forward+loss+backward (train batches) and forward+loss (valid batches) in a fit, and the
    fit's own seconds; on CUDA it synchronises at both ends of each measured span, so the split is real."""

    order = -20  # before_batch: first, after Autocast has not yet entered; the spans end in after_backward/loss

    def __init__(self, device: torch.device):
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.compute_s = self.fit_s = 0.0

    def before_fit(self):
        self.sync()
        self.fit_start = time.perf_counter()

    def before_batch(self):
        self.sync()
        self.batch_start = time.perf_counter()

    def _end_span(self):
        self.sync()
        self.compute_s += time.perf_counter() - self.batch_start

    def after_loss(self):
        if not self.training:
            self._end_span()

    def after_backward(self):
        self._end_span()

    def after_fit(self):
        self.sync()
        self.fit_s = time.perf_counter() - self.fit_start


@dataclass
class StageReport:
    """One stage of the fold: what a GPU user needs to cost the preset."""

    stage: str
    size: int
    batch_size: int
    epochs: int
    train_images: int
    img_per_s: float  # training images per second of the whole fit (validation and checkpoints included)
    epoch_s: list = field(default_factory=list)
    peak_mem_gib: float | None = None
    outside_fwd_bwd: float = 0.0  # share of the fit's time outside forward/backward
    best_map_iou: float = 0.0


def run_stage(stage: str, settings: TrainSettings, data: PackedData, folds, device: torch.device,
              work_dir: Path, init_weights: str | None = None) -> tuple[StageReport, dict]:
    """Train fold 0 at one stage's settings -> (its report, the best state dict). Raises NonFiniteLossError."""
    timer = ComputeTimer(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = train_fold(data, folds, 0, settings, work_dir / stage, device, init_weights, extra_cbs=(timer,))
    n_train = len(fold_indices(folds, data.ids, 0)[0])
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    report = StageReport(stage, settings.size, settings.batch_size, settings.epochs, n_train,
                         img_per_s=n_train // settings.batch_size * settings.batch_size * settings.epochs / timer.fit_s,
                         epoch_s=[round(s, 2) for s in result.history["seconds"]], peak_mem_gib=peak,
                         outside_fwd_bwd=1 - timer.compute_s / timer.fit_s, best_map_iou=result.best_score)
    return report, result.state_dict


def check_prediction(probs: np.ndarray, n: int, side: int) -> None:
    """Raise ValueError unless probs is (n, side, side), finite and within [0, 1]."""
    if probs.shape != (n, side, side):
        raise ValueError(f"prediction shape {probs.shape}, expected {(n, side, side)}")
    values = probs.astype(np.float32)
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise ValueError("prediction holds values outside [0, 1] or non-finite ones")


def _settings(config: dict, stage: str, epochs: int, size: int | None = None,
              batch_size: int | None = None) -> TrainSettings:
    """TrainSettings of a resolved preset's stage, built as the rules build them (settings_of), from random
    init and for `epochs` (and at toy `size` and `batch_size` where given)."""
    toy = {"size": size, "batch_size": batch_size} if size else {}
    return settings_of(config, stage, encoder_weights="none", epochs=epochs, **toy)


def preset_cost(preset: dict, reports: list[StageReport], gpus: tuple[int, ...] = (1, 2, 4, 8)) -> dict:
    """The preset's whole training from the measured epochs (first epoch left out: cuDNN autotuning,
    compilation): hours per fold, GPU-hours for all folds, and wall hours with `--resources gpu=N`, where
    N folds train at once (each fold on its own GPU; enough CPU cores assumed for their loaders)."""
    per_fold_s = 0.0
    for stage, report in zip(("train", "finetune"), reports):
        steady = report.epoch_s[1:] or report.epoch_s
        per_fold_s += preset[stage]["epochs"] * float(np.median(steady))
    n_folds = preset["folds"]["n"]
    return {"fold_hours": per_fold_s / 3600, "gpu_hours": n_folds * per_fold_s / 3600,
            "wall_hours": {n: -(-n_folds // n) * per_fold_s / 3600 for n in gpus}}


def _print_stage(r: StageReport) -> None:
    mem = f"{r.peak_mem_gib:.1f} GiB" if r.peak_mem_gib is not None else "n/a (CPU)"
    print(f"{r.stage:>8} {r.size:>4} px  batch {r.batch_size:>3}  {r.epochs} epoch(s) of {r.train_images} images: "
          f"{r.img_per_s:8.1f} img/s, epoch s {r.epoch_s}, peak GPU memory {mem}, "
          f"{100 * r.outside_fwd_bwd:.0f}% outside forward/backward, best map_iou {r.best_map_iou:.3f}", flush=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m saltnet.performance.gpucheck", description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="competition", help="a preset's name (workflow/presets) or a config file")
    p.add_argument("--model", help="another registered model than the preset's")
    p.add_argument("--epochs", type=int, nargs=2, default=(3, 2), metavar=("TRAIN", "FINETUNE"))
    p.add_argument("--n-train", type=int, default=4000,
                   help="synthetic training images (the competition's training set has 4000)")
    p.add_argument("--tiny", action="store_true", help="toy sizes on any device: the code path, not the costs")
    p.add_argument("--no-bench", action="store_true", help="skip the benchmark")
    p.add_argument("--out", help="write the stage reports and benchmark rows as JSON here")
    return p


def _bench(preset: dict, preset_file: str, sizes: list[int], tiny: bool) -> list[dict]:
    """Benchmark rows: on the GPU every mode and precision of three models, then the preset's model eager
    and compiled side by side at the first size in bf16; `tiny`: the preset's model in fp32, a step a row."""
    if tiny:
        return bench.main(["--preset", preset_file, "--models", preset["model"], "--sizes", *map(str, sizes),
                           "--precisions", "fp32",
                           "--batch-size", "4", "--min-steps", "1", "--min-seconds", "0", "--max-seconds", "5"])
    models = dict.fromkeys([preset["model"], "resunet_scse", bench.SMP_NAME])
    rows = bench.main(["--preset", preset_file, "--models", *models, "--sizes", *map(str, sizes)])
    compiled = ["--preset", preset_file, "--models", preset["model"], "--compile", "--precisions", "bf16", "--sizes",
                str(sizes[0])]
    return rows + bench.main(compiled)


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    # The preset resolved as a run resolves it (schema defaults, the file), so this trains what a run trains.
    preset_file = preset_path(args.preset)
    preset = resolve_config([preset_file], {"model": args.model} if args.model else {})
    if isinstance(preset["fold_threads"], int):  # a fold job's threads in a real run, at most this machine's cores
        torch.set_num_threads(min(preset["fold_threads"], os.cpu_count() or 1))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
    machine = bench.machine_info(device)
    print(f"gpu-check on {machine['device']}, torch {torch.__version__}, preset {args.preset}",
          flush=True)
    tiny = TINY if args.tiny else None
    stages = ("train", "finetune")
    sizes = list(tiny["sizes"]) if tiny else [preset[s]["size"] for s in stages]
    rows = [] if args.no_bench else _bench(preset, str(preset_file), sizes, args.tiny)
    epochs = tiny["epochs"] if tiny else args.epochs
    with tempfile.TemporaryDirectory(prefix="saltnet-gpu-check-") as tmp:
        tmp = Path(tmp)
        n_train, n_test = (tiny["n_train"], tiny["n_test"]) if tiny else (args.n_train, 100)
        make_demo_data(tmp / "data", n_train=n_train, n_test=n_test, seed=0)
        data, _ = pack_competition(tmp / "data")
        folds = split_folds(data.ids, data.masks, preset["folds"]["n"], preset["folds"]["seed"])
        reports, init = [], None
        for k, stage in enumerate(stages):
            toy = (tiny["sizes"][k], tiny["batch_sizes"][k]) if tiny else (None, None)
            settings = _settings(preset, stage, epochs[k], *toy)
            try:
                report, state = run_stage(stage, settings, data, folds, device, tmp / "work", init)
            except NonFiniteLossError as err:
                print(f"gpu-check FAILED: {err}", file=sys.stderr)
                raise SystemExit(1) from err
            _print_stage(report)
            reports.append(report)
            init = str(tmp / f"{stage}.pth")
            save_model_file(init, state, settings, stage)
        model, _ = load_model(init, settings)
        _, valid_idx = fold_indices(folds, data.ids, 0)
        images = data.images[valid_idx]
        precision = resolve_bf16(settings.bf16, device)
        t0 = time.perf_counter()
        probs = predict_probs(model, images, get_model_spec(settings.model).input_size(settings.size, 101),
                              device, batch_size=preset["predict"]["batch_size"], tta=True,
                              bf16=precision.bf16)
        predict_img_s = len(images) / (time.perf_counter() - t0)
    try:
        check_prediction(probs, len(images), data.images.shape[-1])
    except ValueError as err:
        print(f"gpu-check FAILED: {err}", file=sys.stderr)
        raise SystemExit(1) from err
    cost = preset_cost(preset, reports)
    total = time.perf_counter() - started
    print(f" predict {settings.size:>4} px  flip TTA, {precision.name}: {predict_img_s:.1f} img/s", flush=True)
    print(f"the preset ({preset['folds']['n']} folds, {preset['train']['epochs']} + {preset['finetune']['epochs']} "
          f"epochs) from these epochs: {cost['fold_hours']:.2f} h a fold, {cost['gpu_hours']:.1f} GPU-hours; wall "
          + ", ".join(f"gpu={n}: {h:.1f} h" for n, h in cost["wall_hours"].items())
          + f"; gpu-check passed in {total:.0f} s", flush=True)
    result = {"device": machine, "stages": [vars(r) for r in reports],
              "predict_img_per_s": predict_img_s, "preset_cost": cost, "bench": rows, "seconds": total}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1, default=str) + "\n")
    return result


if __name__ == "__main__":
    main()
