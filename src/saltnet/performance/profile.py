"""Where a training step's time goes: torch.profiler over the bench's step, the operators grouped by kind.

    python -m saltnet.performance.profile --preset cpu --precision bf16

The step is bench.make_train_step's (forward, the Lovász loss with the preset's deep supervision, backward,
Adam), on the preset's model at its train.size, channels_last (`--nchw`: the default layout), random init,
random 0/1 targets. Each operator's *self* time goes to the first group whose pattern its name contains
(GROUPS); the table gives milliseconds per step and the share of the step. It answers what to fuse or
remove before buying speed elsewhere: convolutions (what bf16/AMX speeds up) against memory-bound work
that it does not (BatchNorm, resampling, element-wise ops, the loss's sort). The CPU preset's folds
train side by side with one thread each on 2 cores: `--threads 1` profiles what they run.
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from saltnet.models import MODELS, build_model
from saltnet.performance.bench import add_config_option, machine_info, make_train_step, parse_with_preset
from saltnet.runtime.atomic import write_json

__all__ = ["GROUPS", "group_of", "profile_step", "format_groups", "main"]

# group -> substrings of aten operator names, first match wins (so "convolution_backward" is a convolution,
# "native_batch_norm_backward" a batch norm).
GROUPS: dict[str, tuple[str, ...]] = {
    "convolution": ("convolution", "conv2d", "mkldnn_conv"),
    "batch_norm": ("batch_norm",),
    "resample": ("upsample", "interpolate", "max_pool", "adaptive_avg_pool", "reflection_pad"),
    "loss sort": ("sort", "gather", "cumsum", "scatter", "index"),
    "optimizer": ("Optimizer", "lerp", "addcdiv", "_foreach", "sqrt"),
    "element-wise": ("add", "mul", "sub", "div", "sigmoid", "threshold", "relu", "clamp", "where", "neg", "exp",
                     "log", "elu", "fill", "sum", "mean", "amax"),
    "copies": ("copy", "_to_copy", "cat", "contiguous", "empty", "clone", "stack"),
}
OTHER = "other"


def group_of(name: str) -> str:
    """An operator name (e.g. 'aten::native_batch_norm_backward') -> its group in GROUPS, or 'other'."""
    return next((group for group, keys in GROUPS.items() if any(k in name for k in keys)), OTHER)


def profile_step(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, bf16: bool, loss: str,
                 aux_weight: float, aux_resolution: str, steps: int, warmup: int = 2) -> dict:
    """x: (N, 3, H, W); target: (N, 1, H, W) in {0,1} -> {step_ms, groups: {group: ms per step}, top: [...]}:
    `warmup` untimed steps, then `steps` profiled ones; self CPU time per operator (CPU only)."""
    step = make_train_step(model, x, target, bf16, loss, aux_weight, aux_resolution)
    for _ in range(warmup):  # oneDNN primitives and allocations: set up once, not what a run pays per step
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    groups: dict[str, float] = {}
    for e in events:
        key = group_of(e.key)
        groups[key] = groups.get(key, 0.0) + e.self_cpu_time_total / 1000 / steps
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
    return {"step_ms": sum(groups.values()),
            "groups": dict(sorted(groups.items(), key=lambda kv: kv[1], reverse=True)),
            "top": [{"op": e.key, "group": group_of(e.key), "ms": e.self_cpu_time_total / 1000 / steps,
                     "calls": e.count // steps} for e in top]}


def format_groups(result: dict, title: str) -> str:
    """A markdown table: group, ms per step, share of the step; then the top operators."""
    total = result["step_ms"]
    lines = [title, "", "| group | ms / step | share |", "|---|---:|---:|"]
    lines += [f"| {g} | {ms:.1f} | {ms / total:.0%} |" for g, ms in result["groups"].items()]
    lines += [f"| **step** | **{total:.1f}** | |", "", "| operator | group | ms / step | calls / step |",
              "|---|---|---:|---:|"]
    lines += [f"| {t['op']} | {t['group']} | {t['ms']:.1f} | {t['calls']} |" for t in result["top"]]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m saltnet.performance.profile", description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="cpu", help="a preset's name or a config file: model, train.size, "
                   "batch size, loss, aux_weight and aux_resolution of its first Lovász stage (default: cpu)")
    add_config_option(p)
    p.add_argument("--model", choices=sorted(MODELS), help="override the preset's model")
    p.add_argument("--size", type=int, help="override the preset's train.size")
    p.add_argument("--batch-size", type=int, help="override the preset's train.batch_size")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    p.add_argument("--nchw", action="store_true", help="model and input in the default (NCHW) memory format "
                   "instead of the pipeline's channels_last")
    p.add_argument("--threads", type=int, help="torch threads (the CPU preset's folds train side by side "
                   "with 1 each on 2 cores; default: torch's)")
    p.add_argument("--steps", type=int, default=5, help="profiled steps (after 2 untimed ones)")
    p.add_argument("--out", help="write the result and the machine as JSON here")
    return p


def main(argv: list[str] | None = None) -> dict:
    """Profile on the CPU; print the tables; write --out; return the result."""
    args, config = parse_with_preset(_parser(), argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    name, size = args.model or config["model"], args.size or config["train"]["size"]
    batch = args.batch_size or config["train"]["batch_size"]
    torch.manual_seed(0)
    memory_format = torch.contiguous_format if args.nchw else torch.channels_last
    model = build_model(name, "none", size).train().to(memory_format=memory_format)
    side = MODELS[name].input_size(size, 101)
    x = torch.randn(batch, 3, side, side).contiguous(memory_format=memory_format)
    target = (torch.rand(batch, 1, side, side) > 0.5).float()
    result = profile_step(model, x, target, args.precision == "bf16", config["loss"], config["aux_weight"],
                          config["aux_resolution"], args.steps)
    machine = machine_info(torch.device("cpu"))
    title = (f"{name}, {size} px (input {side}), batch {batch}, {args.precision}, "
             f"{'NCHW' if args.nchw else 'channels_last'}, loss {config['loss']}, "
             f"aux_resolution {config['aux_resolution']}; "
             f"CPU {machine['cpu_model']} ({machine['cpu_capability']}), threads {machine['threads']}, "
             f"torch {torch.__version__}: {1000 * batch / result['step_ms']:.1f} img/s under the profiler")
    print(format_groups(result, title))
    if args.out:
        write_json(args.out, {"model": name, "size": size, "input_size": side, "batch_size": batch,
                              "precision": args.precision, "memory_format": "NCHW" if args.nchw else "channels_last",
                              "aux_resolution": config["aux_resolution"], **result, **machine})
    return result


if __name__ == "__main__":
    main()
