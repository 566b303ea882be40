"""`python -m saltnet.allocator_probe MODEL SIZE BATCH`: print training images/s of MODEL (random init,
fp32) in this process, for saltnet.allocator to compare the allocators it was started under."""

from __future__ import annotations

import sys
import time

import torch

from .allocator import DEFAULT_WORKLOAD
from .losses import symmetric_lovasz
from .models import build_model, get_model_spec


def probe(model_name: str, size: int = 64, batch_size: int = 8, steps: int = 4) -> float:
    torch.manual_seed(0)
    model = build_model(model_name, "none", size).to(memory_format=torch.channels_last)
    side = get_model_spec(model_name).input_size(size, 101)
    x = torch.randn(batch_size, 3, side, side).contiguous(memory_format=torch.channels_last)
    y = (torch.rand(batch_size, 1, side, side) > 0.5).float()
    opt = torch.optim.Adam(model.parameters())
    times = []
    for _ in range(steps + 1):  # the first step warms up
        start = time.perf_counter()
        loss = symmetric_lovasz(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return batch_size / sorted(times[1:])[len(times[1:]) // 2]


if __name__ == "__main__":
    name, size, batch = (sys.argv[1:] + [str(v) for v in DEFAULT_WORKLOAD][len(sys.argv) - 1:])[:3]
    print(f"{probe(name, int(size), int(batch)):.4f}")
