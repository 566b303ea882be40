"""The blog's UnetResNext50: SE-ResNeXt50 encoder, centre block, five decoders, hypercolumn head.

Architecture from "Understanding building blocks of Unet model" (V. Subramanian, blog, Part 2),
itself in the line of the TGS top solutions (hypercolumns: Hariharan et al., CVPR 2015). Fix over
the blog: decoders and the hypercolumn upsample to the size of the tensor they meet, not by fixed
scale factors, so any input of at least 32 px gives an output of the input's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from fastai.layers import ConvLayer
from torch import nn

from saltnet.models.encoders import build_encoder

__all__ = ["HypercolumnSEResNeXt50", "hypercolumn_se_resnext50"]


class Decoder(nn.Module):
    """Upsample to `size` (bilinear), then two conv-bn-relu: (N, C_in, h, w) -> (N, C_out, *size)."""

    def __init__(self, in_channels: int, channels: int, out_channels: int):
        super().__init__()
        self.conv1 = ConvLayer(in_channels, channels)
        self.conv2 = ConvLayer(channels, out_channels)

    def forward(self, x: torch.Tensor, size: torch.Size) -> torch.Tensor:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.conv2(self.conv1(x))


class HypercolumnSEResNeXt50(nn.Module):
    """(N, 3, H, W) -> (N, 1, H, W) logits; H, W >= 32."""

    def __init__(self, encoder_weights: str = "none", fs: int = 32):
        super().__init__()
        senet = build_encoder("se_resnext50_32x4d", encoder_weights)
        self.encode1 = senet.layer0[:-1]  # conv-bn-relu at H/2; the blog swaps its pool for a 2x2 one
        self.encode2, self.encode3 = senet.layer1, senet.layer2
        self.encode4, self.encode5 = senet.layer3, senet.layer4
        self.center = nn.Sequential(ConvLayer(2048, 2048), ConvLayer(2048, 1024))
        self.decoder5 = Decoder(2048 + 1024, 512, fs)
        self.decoder4 = Decoder(1024 + fs, 256, fs)
        self.decoder3 = Decoder(512 + fs, 128, fs)
        self.decoder2 = Decoder(256 + fs, 64, fs)
        self.decoder1 = Decoder(fs, fs, fs)
        self.logit = nn.Sequential(ConvLayer(fs * 5, 64), ConvLayer(64, 32), nn.Conv2d(32, 1, kernel_size=1))

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Returns [x0 (H/2, 64), e2 (H/4, 256), e3 (H/8, 512), e4 (H/16, 1024), e5 (H/32, 2048)]."""
        x0 = self.encode1(x)
        e2 = self.encode2(F.max_pool2d(x0, kernel_size=2, stride=2))
        e3 = self.encode3(e2)
        e4 = self.encode4(e3)
        return [x0, e2, e3, e4, self.encode5(e4)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0, e2, e3, e4, e5 = self.encode(x)
        f = self.center(e5)
        d5 = self.decoder5(torch.cat([f, e5], 1), e4.shape[-2:])
        d4 = self.decoder4(torch.cat([d5, e4], 1), e3.shape[-2:])
        d3 = self.decoder3(torch.cat([d4, e3], 1), e2.shape[-2:])
        d2 = self.decoder2(torch.cat([d3, e2], 1), x0.shape[-2:])
        d1 = self.decoder1(d2, x.shape[-2:])
        size = d1.shape[-2:]
        up = [F.interpolate(d, size=size, mode="bilinear", align_corners=False) for d in (d2, d3, d4, d5)]
        return self.logit(torch.cat([d1, *up], 1))


def hypercolumn_se_resnext50(encoder_weights: str = "none", size: int = 128) -> nn.Module:
    """Registry builder; `size` is accepted for a uniform signature and not needed."""
    return HypercolumnSEResNeXt50(encoder_weights)
