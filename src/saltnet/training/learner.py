"""The fold's fastai Learner: model, loss at the model's resolution, metric at 101x101."""

from __future__ import annotations

from typing import Callable

import fastai.callback.progress  # noqa: F401  (patches Learner.no_bar)
import fastai.callback.schedule  # noqa: F401  (patches Learner.fit_one_cycle)
import numpy as np
import torch
import torch.nn.functional as F
from fastai.learner import Learner
from fastai.metrics import Metric

from saltnet.evaluation.metric import image_scores
from saltnet.models.resunet import DeepLogits, resize, to_native, to_network
from saltnet.training.losses import get_loss

__all__ = ["AUX_TARGETS", "ResizedTargetLoss", "training_loss", "CompetitionMetric", "build_learner"]


def _aux_at_output(out: DeepLogits, target: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each level's logits upsampled to the network's side S, then cropped (or resized) to the native
    H x W as the main logits are, each against target (N, 1, H, W): four losses at the native resolution."""
    native = out.main.shape[-2:]
    return [(to_native(resize(level, (out.size, out.size)), native, out.pad).float(), target) for level in out.levels]


def _aux_at_level(out: DeepLogits, target: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each level's logits (N, 1, S/2^k, S/2^k) as they are, against the target brought to the network's
    input as the image was (reflect-padded, or resized) and averaged over each level's cells, > 0.5: no
    upsampling, and the levels' Lovász sorts have 2.5-160x fewer pixels than at the native 101 px."""
    canvas = to_network(target, out.size, out.pad)
    return [(level.float(), (F.adaptive_avg_pool2d(canvas, level.shape[-2:]) > 0.5).float()) for level in out.levels]


# config key aux_resolution -> (DeepLogits, target (N, 1, H, W)) -> [(level logits, level target)]
AUX_TARGETS: dict[str, Callable[[DeepLogits, torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]] = {
    "output": _aux_at_output,
    "level": _aux_at_level,
}


class ResizedTargetLoss:
    """Loss on logits (N,1,S,S) against a target (N,1,H,W) resized to S (bilinear, then > 0.5).

    A deep-supervised model's training output (DeepLogits) adds, for each decoder level, `aux_weight`
    (config key aux_weight) times the same loss on the images whose mask is not empty (empty images
    teach the auxiliary heads nothing about shape; as the 1st and 4th TGS places did), the level's
    logits and target paired by AUX_TARGETS[aux_resolution] (config key aux_resolution). Then
    `main_loss` keeps the main output's share (detached), so the history can show a training loss
    comparable with the validation loss, which never has auxiliary terms; otherwise it is None.
    """

    def __init__(self, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], aux_weight: float,
                 aux_resolution: str):
        if aux_resolution not in AUX_TARGETS:
            raise ValueError(f"aux_resolution {aux_resolution!r}: choose one of {sorted(AUX_TARGETS)}")
        self.loss, self.aux_weight, self.aux_targets = loss, aux_weight, AUX_TARGETS[aux_resolution]
        self.main_loss: torch.Tensor | None = None

    def __call__(self, logits: torch.Tensor | DeepLogits, target: torch.Tensor) -> torch.Tensor:
        deep = logits if isinstance(logits, DeepLogits) else None
        main = deep.main if deep is not None else logits
        target = target.float()
        if target.shape[-2:] != main.shape[-2:]:
            target = F.interpolate(target, size=main.shape[-2:], mode="bilinear", align_corners=False)
            target = (target > 0.5).float()
        loss = self.loss(main, target)
        if deep is None:
            self.main_loss = None
            return loss
        self.main_loss = loss.detach()
        salt = target.flatten(1).amax(1) > 0  # (N,) the mask is not empty
        return loss + self.aux_weight * self._aux_loss(self.aux_targets(deep, target), salt)

    def _aux_loss(self, pairs: list[tuple[torch.Tensor, torch.Tensor]], salt: torch.Tensor) -> torch.Tensor:
        """pairs: [(logits (N, 1, s, s), target (N, 1, s, s))] per level; salt: (N,) bool -> the sum over
        the levels, images with salt only."""
        if not salt.any():  # keeps the graph intact; finite even if a logit is not
            return sum(torch.nan_to_num(aux).sum() for aux, _ in pairs) * 0.0
        return sum(self.loss(aux[salt], level_target[salt]) for aux, level_target in pairs)


class CompetitionMetric(Metric):
    """The competition score (see metric.py) of logits resized to the target's native size."""

    def reset(self):
        self.scores = []

    def accumulate(self, learn):
        logits, target = learn.pred.float(), learn.yb[0]
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
        pred = (logits > 0)[:, 0].cpu().numpy()
        self.scores.append(image_scores(pred, target[:, 0].cpu().numpy() > 0.5))

    @property
    def value(self):
        return float(np.concatenate(self.scores).mean()) if self.scores else None

    @property
    def name(self):
        return "map_iou"


def training_loss(loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                  model: torch.nn.Module, aux_weight: float, aux_resolution: str) -> ResizedTargetLoss:
    """The registered loss `loss` (or a loss function), wrapped for `model`'s training outputs
    (see ResizedTargetLoss); aux_weight, aux_resolution: the deep-supervision levels' weight and where
    their loss is taken (config keys of the same names)."""
    return ResizedTargetLoss(get_loss(loss) if isinstance(loss, str) else loss, aux_weight, aux_resolution)


def build_learner(dls, model: torch.nn.Module, loss: str, wd: float, cbs: list, aux_weight: float,
                  aux_resolution: str) -> Learner:
    """A Learner with fastai's default Adam (decoupled weight decay), as in the blog."""
    return Learner(dls, model, loss_func=training_loss(loss, model, aux_weight, aux_resolution),
                   metrics=[CompetitionMetric()], wd=wd, cbs=cbs)
