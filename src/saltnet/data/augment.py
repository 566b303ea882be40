"""Batch augmentation on the device: horizontal flip, then one random affine map and brightness.

The same geometry moves the image and its mask (one sampling grid, built in normalised
coordinates, so it fits both when the image was resized and the mask kept at 101 px). No vertical
flip: salt lies below sediment, and the top solutions kept gravity (e.g. tugstugi/pytorch-saltnet
and ybabakhin/kaggle_salt_bes_phalanx used flips, small shifts, scaling and brightness only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from saltnet.config.resolve import schema_defaults

__all__ = ["AugmentSettings", "augment_batch"]


_DEFAULTS = schema_defaults(section="augment")  # the schema's defaults: the only ones


@dataclass(frozen=True)
class AugmentSettings:
    """Config key `augment` (defaults: the schema's). p: chance that an image gets the affine map and
    brightness change."""

    hflip: bool = _DEFAULTS["hflip"]
    p: float = _DEFAULTS["p"]  # 0: flips only (the blog's recipe)
    shift: float = _DEFAULTS["shift"]  # largest shift, as a fraction of the image side
    scale: float = _DEFAULTS["scale"]  # zoom factor drawn from [1 - scale, 1 + scale]
    rotate: float = _DEFAULTS["rotate"]  # largest rotation, degrees
    brightness: float = _DEFAULTS["brightness"]  # largest brightness shift, in normalised units (std of the data)

    @property
    def affine(self) -> bool:
        return self.p > 0 and (self.shift > 0 or self.scale > 0 or self.rotate > 0)


def _uniform(n: int, bound: float, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, device=device) * 2 - 1) * bound


def _affine_grid(n: int, settings: AugmentSettings, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """(n, 2, 3) maps from output to input coordinates; identity for images that drew no change."""
    on = (torch.rand(n, device=device) < settings.p).float()
    angle = _uniform(n, math.radians(settings.rotate), device) * on
    zoom = 1 + _uniform(n, settings.scale, device) * on
    shift = torch.stack([_uniform(n, 2 * settings.shift, device), _uniform(n, 2 * settings.shift, device)], 1)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    return torch.cat([theta, (shift * on[:, None])[..., None]], 2)


def _warp(x: torch.Tensor, theta: torch.Tensor, mode: str) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="reflection", align_corners=False)


def augment_batch(x: torch.Tensor, ys: list[torch.Tensor], settings: AugmentSettings) -> tuple[torch.Tensor, list]:
    """x: (N, C, S, S) float images; ys: masks (N, 1, H, W) float in {0,1} -> the same, augmented."""
    n, device = len(x), x.device
    if settings.hflip:
        flip = (torch.rand(n, device=device) < 0.5).view(-1, 1, 1, 1)
        x = torch.where(flip, x.flip(-1), x)
        ys = [torch.where(flip, y.flip(-1), y) for y in ys]
    if settings.affine:
        theta = _affine_grid(n, settings, x.shape[-2:], device)
        memory_format = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else None
        x = _warp(x.contiguous(), theta, "bilinear")
        x = x.contiguous(memory_format=memory_format) if memory_format else x
        ys = [(_warp(y, theta, "bilinear") > 0.5).float() for y in ys]
    if settings.p > 0 and settings.brightness > 0:
        on = (torch.rand(n, device=device) < settings.p).float()
        x = x + (_uniform(n, settings.brightness, device) * on).view(-1, 1, 1, 1)
    return x, ys
