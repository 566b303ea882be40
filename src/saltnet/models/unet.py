"""fastai's DynamicUnet on a torchvision ResNet34 body: the blog's ``unet_learner`` baseline."""

from __future__ import annotations

from fastai.vision.learner import create_body
from fastai.vision.models.unet import DynamicUnet
from torch import nn

from saltnet.models.encoders import build_encoder

__all__ = ["unet_resnet34"]


def unet_resnet34(encoder_weights: str = "none", size: int = 128) -> nn.Module:
    """(N, 3, S, S) -> (N, 1, S, S) logits. Parameters do not depend on `size` (any S works)."""
    body = create_body(build_encoder("resnet34", encoder_weights), n_in=3, pretrained=True)
    return DynamicUnet(body, n_out=1, img_size=(size, size))
