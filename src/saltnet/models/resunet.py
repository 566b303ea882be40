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
- an empty-mask classifier (optional) on the pooled bottleneck whose features are also fed to the
  last refining convolution, so every pixel's logit knows whether the image has salt at all (the 4th
  place, SeuTao/TGS-Salt-Identification: a 64-channel projection of the pooled encoder output feeds
  both a salt/no-salt classifier, weight 0.05, and the final logits; the 1st place also classified
  empty masks). 38% of the training masks are empty, and any predicted pixel on one scores 0;
- coordinate channels (optional): the gray image, each row's height in the frame and their product
  instead of three copies of the gray image (CoordConv: Liu et al., "An intriguing failing of
  convolutional neural networks and the CoordConv solution", NeurIPS 2018; the TGS kernels' "depth
  channels" fed the same ramp and image x ramp), since salt lies below sediment;
BatchNorm follows every convolution. The widths double per level from `width` (16 by default:
about 2.2 M parameters, ~9 MB of fp32 weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ResUNet", "FitToSize", "build_resunet", "coord_channels"]


def coord_channels(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) normalised image (gray copies) -> (N, 3, H, W): the image's first channel, each
    row's height in the frame (-1 at the top, 1 at the bottom) and their product."""
    image = x[:, :1]
    rows = torch.linspace(-1.0, 1.0, x.shape[-2], device=x.device, dtype=x.dtype)[None, None, :, None]
    rows = rows.expand_as(image)
    return torch.cat([image, rows, image * rows], 1)


def resize(x: torch.Tensor, size) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, *size), bilinear: how every map here is brought to another level's size."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


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
    """Upsample to the skip's size, concatenate, ResBlock: (N, C_in, h, w), skip (N, C_skip, H, W) -> (N, C_out, H, W)."""

    def __init__(self, c_in: int, c_skip: int, c_out: int):
        super().__init__()
        self.block = ResBlock(c_in + c_skip, c_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = resize(x, skip.shape[-2:])
        return self.block(torch.cat([x, skip], 1))


class ResUNet(nn.Module):
    """(N, C_in, S, S) -> (N, 1, S, S) logits, any S >= 32.

    With `deep_supervision`, in training mode only: (N, 5, S, S), the main logits then one channel per
    decoder level (S/16 ... S/2, upsampled to S); in eval mode the main logits alone, as without.
    With `classify`, in training mode only, one more last channel: the image's salt/no-salt logit,
    constant over the map (`classifies` tells the loss, see learner.ResizedTargetLoss); in any mode
    the final convolution also sees the classifier's features (the context), broadcast over the image.

    With `hypercolumn`, the four decoder levels' features (S/16 ... S/2), upsampled to S/2 and
    concatenated, are fused by a 1x1 conv-BN-ReLU into what the last step upsamples (instead of the
    S/2 decoder's output alone), so the coarse levels reach the final logits directly.

    With `coord`, the input's three gray copies are replaced by `coord_channels` (gray, row height,
    gray x height) before the stem.

    A light full-resolution stem (width/2 channels) and a stride-2 convolution, then five residual
    levels at S/2 ... S/32 and four decoders back to S/2; the last step upsamples to S and refines
    with the full-resolution stem features (one 3x3 conv), so boundaries are drawn at full resolution
    without running heavy blocks there (a stride-1 ResNet level at 128 px made the net 3-5x slower).
    """

    def __init__(self, in_channels: int = 3, width: int = 16, deep_supervision: bool = False,
                 classify: bool = False, hypercolumn: bool = False, coord: bool = False):
        super().__init__()
        self.coord = coord
        widths = [width * 2**i for i in range(5)]  # 16, 32, 64, 128, 256
        fine = width // 2
        context = width if classify else 0
        self.stem = nn.Sequential(conv_bn(in_channels, fine), nn.ReLU(inplace=True))
        self.down = nn.Sequential(nn.Conv2d(fine, widths[0], 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        self.encoders = nn.ModuleList(ResBlock(c_in, c_out) for c_in, c_out in zip([widths[0], *widths[:-1]], widths))
        self.decoders = nn.ModuleList(UpBlock(widths[i + 1], widths[i], widths[i]) for i in reversed(range(4)))
        # (N, 16 + 32 + 64 + 128, S/2, S/2) -> (N, 16, S/2, S/2) with the default widths
        self.fuse = (nn.Sequential(conv_bn(sum(widths[:4]), widths[0], kernel=1), nn.ReLU(inplace=True))
                     if hypercolumn else None)
        self.refine = nn.Sequential(conv_bn(widths[0] + fine + context, fine), nn.ReLU(inplace=True))
        self.head = nn.Conv2d(fine, 1, kernel_size=1)
        levels = [widths[i] for i in reversed(range(4))] if deep_supervision else []
        self.aux_heads = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1) for c in levels)
        self.classifies = classify
        if classify:
            self.context = nn.Conv2d(widths[-1], context, kernel_size=1)  # of the pooled bottleneck
            self.classifier = nn.Linear(context, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        full = self.stem(coord_channels(x) if self.coord else x)
        x = self.down(full)
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(F.max_pool2d(x, 2) if i else x)
            skips.append(x)
        context = self.context(F.adaptive_avg_pool2d(x, 1)) if self.classifies else None  # (N, C, 1, 1)
        levels = []  # the decoders' outputs, S/16 ... S/2
        for decoder, skip in zip(self.decoders, reversed(skips[:-1])):
            x = decoder(x, skip)
            levels.append(x)
        if self.fuse is not None:
            x = self.fuse(torch.cat([resize(a, x.shape[-2:]) for a in levels[:-1]] + [x], 1))
        x = resize(x, full.shape[-2:])
        features = [x, full] if context is None else [x, full, context.expand(-1, -1, *full.shape[-2:])]
        logits = self.head(self.refine(torch.cat(features, 1)))
        if not (self.training and (self.aux_heads or self.classifies)):
            return logits
        size = logits.shape[-2:]
        extra = [resize(head(a), size) for head, a in zip(self.aux_heads, levels)]
        if context is not None:
            extra.append(self.classifier(context.flatten(1))[:, :, None, None].expand_as(logits))
        return torch.cat([logits, *extra], 1)


class FitToSize(nn.Module):
    """Run `net` at `size` on native images: reflect-pad up to it (or resize down), crop the logits back.

    (N, C, H, W) -> (N, K, H, W), K the net's output channels (1, or more with deep supervision in
    training): the model takes and returns the native resolution, so the loss and
    the metric see the competition's 101x101 pixels with no resampling.
    """

    def __init__(self, net: nn.Module, size: int):
        super().__init__()
        self.net, self.size = net, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.size < max(h, w):
            logits = self.net(resize(x, (self.size, self.size)))
            return resize(logits, (h, w))
        top, left = (self.size - h) // 2, (self.size - w) // 2
        x = F.pad(x, (left, self.size - w - left, top, self.size - h - top), mode="reflect")
        return self.net(x)[..., top : top + h, left : left + w]


def build_resunet(name: str, encoder_weights: str = "none", size: int = 128, width: int = 16, pad: bool = True,
                  deep_supervision: bool = False, classify: bool = False, hypercolumn: bool = False,
                  coord: bool = False) -> nn.Module:
    """Registry builder of the resunet_scse family, random init only (encoder_weights must be 'none').

    pad: take the native 101 px images and reflect-pad them to `size` (FitToSize); else the network
    alone, fed images resized to `size` (the usual Kaggle way, to measure padding against it).
    deep_supervision: auxiliary decoder logits in training; classify: the empty-mask classifier;
    hypercolumn: the decoder levels fused before the last step; coord: coordinate channels (see ResUNet).
    """
    if encoder_weights != "none":
        raise ValueError(f"model {name} trains from random init; set encoder_weights: none (got {encoder_weights!r})")
    net = ResUNet(width=width, deep_supervision=deep_supervision, classify=classify, hypercolumn=hypercolumn,
                  coord=coord)
    return FitToSize(net, size) if pad else net
