"""Model registry: config name -> builder and the input sizes the model takes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

__all__ = ["ModelSpec", "MODELS", "get_model_spec", "build_model"]


@dataclass(frozen=True)
class ModelSpec:
    """builder(encoder_weights, size) -> nn.Module mapping (N, 3, S, S) to (N, 1, S, S) logits.

    In training mode a model with deep supervision returns (N, 1 + L, S, S): the logits, then L
    auxiliary logit maps that learner.ResizedTargetLoss weighs in. In eval mode always (N, 1, S, S).
    """

    builder: Callable[..., nn.Module]
    encoder: str | None  # ImageNet encoder whose weights `encoder_weights: imagenet` fetches; None: none
    summary: str  # one line for docs/models.md
    min_size: int = 32  # five stride-2 stages: smaller inputs vanish in the bottleneck
    native_input: bool = False  # takes the native 101 px images and fits them to `size` itself (pads)

    def input_size(self, size: int, native: int) -> int:
        """Side of the images the loaders feed the model built for `size` px."""
        return native if self.native_input else size


def _unet_resnet34(**kwargs) -> nn.Module:
    from saltnet.models.unet import unet_resnet34

    return unet_resnet34(**kwargs)


def _hypercolumn(**kwargs) -> nn.Module:
    from saltnet.models.hypercolumn import hypercolumn_se_resnext50

    return hypercolumn_se_resnext50(**kwargs)


def _resunet(name: str, deep_supervision: bool, fine_blocks: bool = False) -> tuple[str, ModelSpec]:
    """Registry entry of the resunet_scse family: it takes the native images and pads them (native_input)."""
    def build(**kwargs) -> nn.Module:
        from saltnet.models.resunet import build_resunet

        return build_resunet(name, deep_supervision=deep_supervision, fine_blocks=fine_blocks, **kwargs)
    summary = ("a small residual U-Net with scSE for training from random init on a CPU, 101 px images "
               "reflect-padded to the stage size")
    if deep_supervision:
        summary = "resunet_scse with its four decoder levels deep-supervised in training (config key aux_weight)"
    if fine_blocks:
        summary = "resunet_scse_ds with residual blocks instead of single convolutions at full resolution"
    return name, ModelSpec(build, encoder=None, summary=summary, native_input=True)


MODELS: dict[str, ModelSpec] = {
    "unet_resnet34": ModelSpec(_unet_resnet34, encoder="resnet34",
                               summary="fastai's DynamicUnet on an ImageNet ResNet34 (the blog's first model)"),
    "hypercolumn_se_resnext50": ModelSpec(_hypercolumn, encoder="se_resnext50_32x4d",
                                          summary="the blog's UnetResNext50: an ImageNet SE-ResNeXt50 encoder, five "
                                                  "decoders and a hypercolumn head"),
    # The small residual U-Net from random init (models/resunet.py), 101 px reflect-padded to `size`;
    # _ds: deep supervision of its decoder levels in training.
    **dict([_resunet("resunet_scse", deep_supervision=False),
            _resunet("resunet_scse_ds", deep_supervision=True),
            _resunet("resunet_scse_ds_fine", deep_supervision=True, fine_blocks=True)]),
}


def get_model_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]


def build_model(name: str, encoder_weights: str = "none", size: int = 128) -> nn.Module:
    """Build model `name` for inputs of `size` px; raises ValueError if it cannot take that size."""
    spec = get_model_spec(name)
    if size < spec.min_size:
        raise ValueError(f"model {name!r} needs images of at least {spec.min_size} px, got {size}")
    return spec.builder(encoder_weights=encoder_weights, size=size)
