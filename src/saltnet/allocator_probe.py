"""`python -m saltnet.allocator_probe MODEL SIZE BATCH`: print training images/s of MODEL (random init,
fp32) in this process, for saltnet.allocator to compare the allocators it was started under."""

from __future__ import annotations

import sys

import torch

from .allocator import DEFAULT_WORKLOAD
from .bench import BENCH_LOSS, time_steps, train_step
from .configschema import schema_defaults
from .models import build_model, get_model_spec


def probe(model_name: str, size: int = 64, batch_size: int = 8, steps: int = 4) -> float:
    """Images/s of `steps` timed training steps (bench's step and timer), random (N, 3, S, S) inputs."""
    torch.manual_seed(0)
    model = build_model(model_name, "none", size).to(memory_format=torch.channels_last)
    side = get_model_spec(model_name).input_size(size, 101)
    x = torch.randn(batch_size, 3, side, side).contiguous(memory_format=torch.channels_last)
    target = (torch.rand(batch_size, 1, side, side) > 0.5).float()
    step = train_step(model, x, target, bf16=False, loss=BENCH_LOSS, aux_weight=schema_defaults()["aux_weight"])
    n, seconds = time_steps(step, lambda: None, min_steps=steps,
                            min_seconds=0, max_seconds=float("inf"))
    return n * batch_size / seconds


if __name__ == "__main__":
    name, size, batch = (sys.argv[1:] + [str(v) for v in DEFAULT_WORKLOAD][len(sys.argv) - 1:])[:3]
    print(f"{probe(name, int(size), int(batch)):.4f}")
