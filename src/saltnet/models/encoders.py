"""Encoder registry: ImageNet classifiers whose bodies become U-Net encoders."""

from __future__ import annotations

from typing import Callable

from torch import nn

from saltnet.models.weights import load_encoder_weights

__all__ = ["ENCODERS", "build_encoder"]


def _resnet34(imagenet: bool) -> nn.Module:
    from torchvision.models import ResNet34_Weights, resnet34

    return resnet34(weights=ResNet34_Weights.IMAGENET1K_V1 if imagenet else None)


def _se_resnext50(imagenet: bool) -> nn.Module:
    import pretrainedmodels

    return pretrainedmodels.se_resnext50_32x4d(num_classes=1000, pretrained="imagenet" if imagenet else None)


ENCODERS: dict[str, Callable[[bool], nn.Module]] = {
    "resnet34": _resnet34,
    "se_resnext50_32x4d": _se_resnext50,
}


def build_encoder(name: str, weights: str = "none") -> nn.Module:
    """The full classifier `name`, its weights from 'imagenet', 'none' or a state-dict file path."""
    if name not in ENCODERS:
        raise KeyError(f"unknown encoder {name!r}; choose one of {sorted(ENCODERS)}")
    model = ENCODERS[name](weights == "imagenet")
    if weights not in ("imagenet", "none"):
        load_encoder_weights(model, weights)
    return model
