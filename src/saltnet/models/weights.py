"""Encoder weights: 'imagenet' (download, needs internet), 'none' (random init) or a file path."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from saltnet.runtime.atomic import atomic_path

__all__ = ["safe_load", "load_state_dict_file", "load_encoder_weights", "fetch_imagenet_weights",
           "WeightsDownloadError"]

log = logging.getLogger(__name__)

# Classifier heads that a U-Net encoder drops; a weights file may or may not carry them.
_HEAD_PREFIXES = ("fc.", "last_linear.")


def safe_load(path: str | Path, what: str = "weights file"):
    """torch.load of `path` on the CPU with weights_only=True (no code is unpickled); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise ValueError(f"{what} {path} is not loadable by torch.load (weights_only): {err}") from err


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict safely (weights_only=True): a bare dict, or one under 'model'/'state_dict'."""
    state = safe_load(path)
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


class WeightsDownloadError(RuntimeError):
    """The ImageNet weights could not be downloaded (no internet, blocked host, HTTP error)."""


def fetch_imagenet_weights(encoder: str, out_path: str | Path) -> Path:
    """Download `encoder`'s ImageNet weights (torchvision / pretrainedmodels) and save its state dict.

    Needs internet (files are cached under $TORCH_HOME/hub); the state dict, classifier included, is
    written atomically to `out_path`, which `encoder_weights: <path>` then loads without internet.
    """
    from saltnet.models.encoders import build_encoder  # encoders imports this module

    try:
        model = build_encoder(encoder, "imagenet")
    except OSError as err:  # urllib's URLError and HTTPError, socket errors and timeouts
        raise WeightsDownloadError(
            f"could not download the ImageNet weights of encoder {encoder!r}: {err}. This needs internet on the "
            f"machine that runs the fetch_encoder_weights rule (on a cluster: where snakemake runs, the login "
            f"node). Alternatives: set `encoder_weights: none` in the config (random init), or download the "
            f"weights where there is internet and set `encoder_weights: path/to/{encoder}.pth` (a state dict "
            f"of the encoder), or copy that file to {out_path}."
        ) from err
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out_path) as tmp:
        torch.save(state, tmp)
    log.info("saved the ImageNet weights of %s (%d tensors) to %s", encoder, len(state), out_path)
    return Path(out_path)
