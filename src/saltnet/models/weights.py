"""Encoder weights: 'imagenet' (download, needs internet), 'none' (random init) or a file path."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = ["load_state_dict_file", "load_encoder_weights"]

# Classifier heads that a U-Net encoder drops; a weights file may or may not carry them.
_HEAD_PREFIXES = ("fc.", "last_linear.")


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict safely (weights_only=True): a bare dict, or one under 'model'/'state_dict'."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise ValueError(f"weights file {path} is not a loadable PyTorch state dict: {err}") from err
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"weights file {path} does not hold a state dict of tensors")
    return state


def load_encoder_weights(encoder: nn.Module, path: str | Path) -> None:
    """Load an ImageNet-style encoder state dict from `path` into `encoder` (classifier ignored)."""
    state = {k: v for k, v in load_state_dict_file(path).items() if not k.startswith(_HEAD_PREFIXES)}
    try:
        result = encoder.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(f"weights file {path} does not fit the {type(encoder).__name__} encoder: {err}") from err
    missing = [k for k in result.missing_keys if not k.startswith(_HEAD_PREFIXES)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"weights file {path} does not fit the {type(encoder).__name__} encoder: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
