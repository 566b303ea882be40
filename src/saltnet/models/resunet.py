"""A small residual U-Net with scSE for 101 px salt images, built to train from random init on a CPU.

Ideas taken from TGS top solutions, the code is ours:
- train from scratch on 101 px images reflect-padded to 128 rather than resized (15th place,
  adam9500370/Kaggle-TGS: a ~8 MB U-shaped net of residual blocks with scSE, 0.887 private with 10
  folds; padding over resizing +0.004 and scSE +0.004 in ak110/kaggle_salt);
- full-resolution features in the last step (the 1st place, ybabakhin/kaggle_salt_bes_phalanx,
  used a stride-1 stem for that; here only a light stem runs at full resolution, for speed);
- scSE blocks: Roy, Navab, Wachinger, "Concurrent Spatial and Channel Squeeze & Excitation in
  Fully Convolutional Networks", MICCAI 2018;
- deep supervision (optional): a 1x1 logit head on every decoder level, trained against the mask
  next to the main output (the 15th place's "auxiliary training"; the 1st and 4th places,
  ybabakhin/kaggle_salt_bes_phalanx and SeuTao/TGS-Salt-Identification, supervised their decoder
  levels on the non-empty masks, as learner.ResizedTargetLoss does);
BatchNorm follows every convolution. The widths double per level from `width` (16 by default:
about 2.2 M parameters, ~9 MB of fp32 weights).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DeepLogits", "ResUNet", "FitToSize", "build_resunet", "resize", "to_network", "to_native"]


def resize(x: torch.Tensor, size) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, *size), bilinear: how every map here is brought to another level's size."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class DeepLogits(NamedTuple):
    """A deep-supervised model's output in training mode (learner.ResizedTargetLoss takes it).

    main: (N, 1, H, W) logits, as the model returns in eval mode; levels: the decoder levels' logits at
    their own resolution, coarsest first, (N, 1, S/16, S/16) ... (N, 1, S/2, S/2), S the network's input
    side `size`; pad: (left, right, top, bottom), the reflect padding that took the H x W input to S x S,
    or None where it was resized to S instead.
    """

    main: torch.Tensor
    levels: tuple[torch.Tensor, ...]
    size: int
    pad: tuple[int, int, int, int] | None = None

    def float(self) -> "DeepLogits":
        """The main logits as float32 (what fastai's Autocast hands on); the levels stay as computed, so the
        loss resamples them in the precision the forward ran in."""
        return self._replace(main=self.main.float())


def to_network(x: torch.Tensor, side: int, pad: tuple[int, int, int, int] | None) -> torch.Tensor:
    """(N, C, H, W) at the native resolution -> (N, C, side, side), as FitToSize feeds the network: reflect-padded
    by `pad` (left, right, top, bottom), or with None resized. to_native undoes it."""
    if pad is None:
        return resize(x, (side, side))
    return F.pad(x, pad, mode="reflect")


def to_native(x: torch.Tensor, size: tuple[int, int], pad: tuple[int, int, int, int] | None) -> torch.Tensor:
    """(N, C, S, S) maps of the network's input -> (N, C, *size) at the native resolution, as FitToSize
    brought them there: the reflect padding `pad` (left, right, top, bottom) cropped off, or with None resized."""
    if pad is None:
        return resize(x, size)
    left, _, top, _ = pad
    return x[..., top : top + size[0], left : left + size[1]]


def conv_bn(c_in: int, c_out: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out))


class SCSE(nn.Module):
    """Channel and spatial squeeze-and-excitation, summed: (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.channel = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(hidden, channels, 1), nn.Sigmoid())
        self.spatial = nn.Sequential(nn.Conv2d(channels, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.channel(x) + x * self.spatial(x)


class ResBlock(nn.Module):
    """Two 3x3 conv-BN with a (1x1 conv-BN) shortcut, ReLU, scSE: (N, C_in, H, W) -> (N, C_out, H, W)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(c_in, c_out), nn.ReLU(inplace=True), conv_bn(c_out, c_out))
        self.shortcut = nn.Identity() if c_in == c_out else conv_bn(c_in, c_out, kernel=1)
        self.scse = SCSE(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scse(F.relu(self.body(x) + self.shortcut(x)))


class UpBlock(nn.Module):
    """Upsample to the skip's size, concatenate, ResBlock:
    (N, C_in, h, w), skip (N, C_skip, H, W) -> (N, C_out, H, W)."""

    def __init__(self, c_in: int, c_skip: int, c_out: int):
        super().__init__()
        self.block = ResBlock(c_in + c_skip, c_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = resize(x, skip.shape[-2:])
        return self.block(torch.cat([x, skip], 1))


class ResUNet(nn.Module):
    """(N, C_in, S, S) -> (N, 1, S, S) logits, any S >= 32.

    With `deep_supervision`, in training mode only: DeepLogits, the main logits and one map per decoder
    level (S/16 ... S/2) at the level's resolution; in eval mode the main logits alone, as without.

    A light full-resolution stem (width/2 channels) and a stride-2 convolution, then five residual
    levels at S/2 ... S/32 and four decoders back to S/2; the last step upsamples to S and refines
    with the full-resolution stem features (one 3x3 conv), so boundaries are drawn at full resolution
    without running heavy blocks there (a stride-1 ResNet level at full resolution is far slower on a CPU).
    `fine_blocks`: the stem and the refinement are residual blocks with scSE (width/2 channels) instead of
    one convolution each, more capacity where small masks and boundaries are drawn (the 1st place kept its
    first level at full resolution, ybabakhin/kaggle_salt_bes_phalanx) at about 1.15x the FLOPs.
    """

    def __init__(self, in_channels: int = 3, width: int = 16, deep_supervision: bool = False,
                 fine_blocks: bool = False):
        super().__init__()
        widths = [width * 2**i for i in range(5)]  # 16, 32, 64, 128, 256
        fine = width // 2
        self.stem = (ResBlock(in_channels, fine) if fine_blocks
                     else nn.Sequential(conv_bn(in_channels, fine), nn.ReLU(inplace=True)))
        self.down = nn.Sequential(nn.Conv2d(fine, widths[0], 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        self.encoders = nn.ModuleList(ResBlock(c_in, c_out) for c_in, c_out in zip([widths[0], *widths[:-1]], widths))
        self.decoders = nn.ModuleList(UpBlock(widths[i + 1], widths[i], widths[i]) for i in reversed(range(4)))
        self.refine = (ResBlock(widths[0] + fine, fine) if fine_blocks
                       else nn.Sequential(conv_bn(widths[0] + fine, fine), nn.ReLU(inplace=True)))
        self.head = nn.Conv2d(fine, 1, kernel_size=1)
        levels = [widths[i] for i in reversed(range(4))] if deep_supervision else []
        self.aux_heads = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1) for c in levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor | DeepLogits:
        full = self.stem(x)
        x = self.down(full)
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(F.max_pool2d(x, 2) if i else x)
            skips.append(x)
        levels = []  # the decoders' outputs, S/16 ... S/2
        for decoder, skip in zip(self.decoders, reversed(skips[:-1])):
            x = decoder(x, skip)
            levels.append(x)
        x = resize(x, full.shape[-2:])
        logits = self.head(self.refine(torch.cat([x, full], 1)))
        if not (self.training and self.aux_heads):
            return logits
        return DeepLogits(logits, tuple(head(a) for head, a in zip(self.aux_heads, levels)), logits.shape[-1])


class FitToSize(nn.Module):
    """Run `net` at `size` on native images: reflect-pad up to it (or resize down), crop the logits back.

    (N, C, H, W) -> (N, 1, H, W) logits (DeepLogits with deep supervision in training, its main logits
    cropped and the padding noted): the model takes and returns the native resolution, so the loss and
    the metric see the competition's 101x101 pixels with no resampling.
    """

    def __init__(self, net: nn.Module, size: int):
        super().__init__()
        self.net, self.size = net, size

    def forward(self, x: torch.Tensor) -> torch.Tensor | DeepLogits:
        h, w = x.shape[-2:]
        pad = None
        if self.size >= max(h, w):
            top, left = (self.size - h) // 2, (self.size - w) // 2
            pad = (left, self.size - w - left, top, self.size - h - top)
        out = self.net(to_network(x, self.size, pad))
        if isinstance(out, DeepLogits):
            return out._replace(main=to_native(out.main, (h, w), pad), pad=pad)
        return to_native(out, (h, w), pad)


def build_resunet(name: str, encoder_weights: str = "none", size: int = 128, width: int = 16,
                  deep_supervision: bool = False, fine_blocks: bool = False) -> nn.Module:
    """Registry builder of the resunet_scse family, random init only (encoder_weights must be 'none'):
    the network at `size`, fed the native 101 px images reflect-padded to it (FitToSize).
    deep_supervision: auxiliary decoder logits in training; fine_blocks: residual blocks at full resolution
    (see ResUNet)."""
    if encoder_weights != "none":
        raise ValueError(f"model {name} trains from random init; set encoder_weights: none (got {encoder_weights!r})")
    return FitToSize(ResUNet(width=width, deep_supervision=deep_supervision, fine_blocks=fine_blocks), size)
