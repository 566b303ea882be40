"""Seeds and cuDNN's autotuner, from config key `deterministic` (auto: on for the CPU, off for CUDA).

Reproducible cuDNN (deterministic algorithms, autotuner off) makes two runs of a fold give the same
weights; on a GPU it also gives up cuDNN's benchmark mode, which times the convolution algorithms for
each new input shape once and keeps the fastest. On the CPU cuDNN is not used, so determinism is free.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from fastai.torch_core import set_seed

__all__ = ["Determinism", "resolve_deterministic", "seed_everything"]


@dataclass(frozen=True)
class Determinism:
    on: bool
    reason: str


def resolve_deterministic(setting: bool | str, device: torch.device) -> Determinism:
    """`setting` is config key deterministic: True, False or 'auto' (on for the CPU, off for CUDA)."""
    if isinstance(setting, bool):
        return Determinism(setting, f"config deterministic: {str(setting).lower()}")
    if setting != "auto":
        raise ValueError(f"config key deterministic: expected true, false or auto, got {setting!r}")
    if device.type == "cuda":
        return Determinism(False, "auto: CUDA, cuDNN autotuner on (runs differ in the last bits)")
    return Determinism(True, f"auto: {device.type}, reproducible at no cost")


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch; then cuDNN deterministic with the autotuner off, or the autotuner on."""
    set_seed(seed, reproducible=deterministic)
    if not deterministic:
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True
