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
    auxiliary logit maps that learner.ResizedTargetLoss weighs in; a model whose `classifies`
    attribute is true (on any submodule) adds a last channel holding its salt/no-salt logit. In eval
    mode always (N, 1, S, S).
    """

    builder: Callable[..., nn.Module]
    encoder: str | None  # ImageNet encoder whose weights `encoder_weights: imagenet` fetches; None: none
    min_size: int = 32  # five stride-2 stages: smaller inputs vanish in the bottleneck
    native_input: bool = False  # takes the native 101 px images and fits them to `size` itself (pads)

    def input_size(self, size: int, native: int) -> int:
        """Side of the images the loaders feed the model built for `size` px."""
        return native if self.native_input else size


def _unet_resnet34(**kwargs) -> nn.Module:
    from .unet import unet_resnet34

    return unet_resnet34(**kwargs)


def _hypercolumn(**kwargs) -> nn.Module:
    from .hypercolumn import hypercolumn_se_resnext50

    return hypercolumn_se_resnext50(**kwargs)


def _resunet(name: str, pad: bool, deep_supervision: bool, classify: bool = False,
             width: int = 16, hypercolumn: bool = False, coord: bool = False) -> tuple[str, ModelSpec]:
    """Registry entry of the resunet_scse family; a padding model takes the native images (native_input)."""
    def build(**kwargs) -> nn.Module:
        from .resunet import build_resunet

        return build_resunet(name, pad=pad, deep_supervision=deep_supervision, classify=classify, width=width,
                             hypercolumn=hypercolumn, coord=coord, **kwargs)
    return name, ModelSpec(build, encoder=None, native_input=pad)


MODELS: dict[str, ModelSpec] = {
    "unet_resnet34": ModelSpec(_unet_resnet34, encoder="resnet34"),
    "hypercolumn_se_resnext50": ModelSpec(_hypercolumn, encoder="se_resnext50_32x4d"),
    # The small residual U-Net from random init (models/resunet.py), 101 px reflect-padded to `size`;
    # _ds: deep supervision in training; _cls: the empty-mask classifier fused into the last
    # convolution; _resized: fed resized images instead (ablations); _wide: widths from 24, not 16
    # (2.25x the FLOPs and parameters: for machines that have the time); _narrow: widths from 12 (0.56x the
    # FLOPs, not much faster on 2 CPU cores: README "Measured");
    # _hc: the decoder levels fused into a hypercolumn before the last step; _coord: coordinate channels
    # (gray, row height, their product) instead of three gray copies.
    **dict([_resunet("resunet_scse", pad=True, deep_supervision=False),
            _resunet("resunet_scse_ds", pad=True, deep_supervision=True),
            _resunet("resunet_scse_ds_wide", pad=True, deep_supervision=True, width=24),
            _resunet("resunet_scse_ds_narrow", pad=True, deep_supervision=True, width=12),
            _resunet("resunet_scse_ds_cls", pad=True, deep_supervision=True, classify=True),
            _resunet("resunet_scse_ds_hc", pad=True, deep_supervision=True, hypercolumn=True),
            _resunet("resunet_scse_ds_coord", pad=True, deep_supervision=True, coord=True),
            _resunet("resunet_scse_resized", pad=False, deep_supervision=False),
            _resunet("resunet_scse_ds_resized", pad=False, deep_supervision=True)]),
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
