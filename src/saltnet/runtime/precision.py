"""Which precision a job computes in: bf16 autocast where the hardware runs it natively and faster.

On a CPU without native bf16 (AVX2 only: no AVX512-BF16, no AMX) oneDNN emulates bf16 and a
training step is many times slower than fp32; on a CPU with AMX it is faster (docs/speed.md).
So `bf16: auto` (the default) asks the hardware: CUDA devices say whether they support bf16; on
a CPU, no native bf16 means fp32, and native bf16 is confirmed by a short timing probe (about a
second), which also catches a CPU that is told to act as AVX2-only
(ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2). `true`/`false` force the choice.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import platform
import time
from dataclasses import dataclass

import torch
from torch import nn

from saltnet.runtime.jobs import cpu_field

__all__ = ["Precision", "resolve_bf16", "cpu_info", "cpu_bf16_speedup", "main"]

log = logging.getLogger(__name__)


_PROBE_MIN_SPEEDUP = 1.1  # bf16 must beat fp32 by this much on the CPU to be chosen
PROBE_STEPS = 5  # timed steps of each precision, after one that warms both up
PROBE_THREADS = 1  # see cpu_bf16_speedup


@dataclass(frozen=True)
class Precision:
    """bf16: autocast on or off; reason: why, in words (logged and written to run.json)."""

    bf16: bool
    reason: str

    @property
    def name(self) -> str:
        return "bf16" if self.bf16 else "fp32"


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict:
    """CPU model, the ISA torch dispatches to, native bf16, threads: named with every speed figure."""
    return {
        "cpu_model": cpu_field("model name", platform.processor() or "unknown"),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": _native_cpu_bf16(),
        "threads": torch.get_num_threads(),
    }


def _native_cpu_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _probe_step(model: nn.Module, x: torch.Tensor, bf16: bool) -> float:
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(x).float().square().mean()
    loss.backward()
    return time.perf_counter() - start


@functools.lru_cache(maxsize=1)
def cpu_bf16_speedup(steps: int = PROBE_STEPS, threads: int = PROBE_THREADS) -> float:
    """fp32 time / bf16 time of a small conv net's training step (64 px, batch 8), interleaved, the best of
    `steps` each, on `threads` threads (the caller's thread count is given back).

    One thread by default: on two threads, other jobs sharing the cores made bf16 look slower than fp32
    on a CPU where it is faster, and one thread under the same load did not (docs/speed.md; `python -m
    saltnet.runtime.precision` repeats the comparison). bf16's gain is per core (AMX tiles,
    AVX512-BF16), so one thread measures what the choice is about.
    Runs on a forked RNG, so the caller's random stream (the fold's seed) is left as it was.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return _probe_speedup(steps)
    finally:
        torch.set_num_threads(before)


def _probe_speedup(steps: int) -> float:
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.Conv2d(64, 1, 1),
    ).to(memory_format=torch.channels_last)
    x = torch.randn(8, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    times = {False: [], True: []}
    for i in range(steps + 1):
        for bf16 in (False, True):
            seconds = _probe_step(model, x, bf16)
            if i:  # the first round warms up both paths
                times[bf16].append(seconds)
    return min(times[False]) / min(times[True])


def resolve_bf16(setting: bool | str, device: torch.device) -> Precision:
    """`setting` is config key bf16: True, False or 'auto'; returns the choice and its reason."""
    if isinstance(setting, bool):
        return Precision(setting, f"config bf16: {str(setting).lower()}")
    if setting != "auto":
        raise ValueError(f"config key bf16: expected true, false or auto, got {setting!r}")
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        name = torch.cuda.get_device_name(device)
        return Precision(ok, f"auto: {name} {'supports' if ok else 'does not support'} bf16")
    info = cpu_info()
    if not info["native_bf16"]:
        return Precision(False, f"auto: CPU {info['cpu_model']} ({info['cpu_capability']}) has no native bf16")
    speedup = cpu_bf16_speedup()
    chosen = speedup >= _PROBE_MIN_SPEEDUP
    return Precision(chosen, f"auto: CPU {info['cpu_model']} ({info['cpu_capability']}) reports native bf16; "
                             f"probe: bf16 step {speedup:.2f}x the speed of fp32")


def main(argv: list[str] | None = None) -> None:
    """Print the bf16 probe's speedup, repeated, on each thread count: how steady the choice of `bf16: auto`
    is on this machine as it is loaded now. Run it beside other work to see the effect of a busy CPU:
        python -m saltnet.runtime.precision --threads 1 2 --repeats 6"""
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[PROBE_THREADS, 2])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--steps", type=int, default=PROBE_STEPS)
    args = parser.parse_args(argv)
    info = cpu_info()
    print(f"CPU {info['cpu_model']} ({info['cpu_capability']}), native bf16: {info['native_bf16']}, "
          f"1-minute load average {os.getloadavg()[0]:.2f}")
    for threads in args.threads:
        ratios = [cpu_bf16_speedup.__wrapped__(args.steps, threads) for _ in range(args.repeats)]
        chosen = sum(r >= _PROBE_MIN_SPEEDUP for r in ratios)
        print(f"{threads} thread(s), best of {args.steps} steps: bf16 {', '.join(f'{r:.2f}' for r in ratios)}x "
              f"the speed of fp32; bf16 chosen {chosen} of {len(ratios)} times")


if __name__ == "__main__":
    main()
