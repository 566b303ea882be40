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
from saltnet.training.losses import get_loss

__all__ = ["ResizedTargetLoss", "training_loss", "CompetitionMetric", "build_learner"]

class ResizedTargetLoss:
    """Loss on logits (N,K,S,S) against a target (N,1,H,W) resized to S (bilinear, then > 0.5).

    Channel 0 is the prediction. Further channels (in training only) are the decoder levels' auxiliary
    logits (deep supervision): each adds `aux_weight` (config key aux_weight) times the same loss on the
    images whose mask is not empty (empty images teach the auxiliary heads nothing about shape; as the
    1st and 4th TGS places did). Then `main_loss` keeps
    the main output's share (detached), so the history can show a training loss comparable with the
    validation loss, which never has auxiliary terms; otherwise it is None.
    """

    def __init__(self, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], aux_weight: float):
        self.loss, self.aux_weight = loss, aux_weight
        self.main_loss: torch.Tensor | None = None

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.shape[-2:] != logits.shape[-2:]:
            target = F.interpolate(target.float(), size=logits.shape[-2:], mode="bilinear", align_corners=False)
            target = (target > 0.5).float()
        loss = self.loss(logits[:, :1], target)
        if logits.shape[1] == 1:
            self.main_loss = None
            return loss
        self.main_loss = loss.detach()
        salt = target.flatten(1).amax(1) > 0  # (N,) the mask is not empty
        return loss + self.aux_weight * self._aux_loss(logits[:, 1:], target, salt)

    def _aux_loss(self, aux: torch.Tensor, target: torch.Tensor, salt: torch.Tensor) -> torch.Tensor:
        """aux: (N, L, S, S) logits; target: (N, 1, S, S); salt: (N,) bool -> the sum over the L levels,
        images with salt only."""
        if not salt.any():
            return torch.nan_to_num(aux).sum() * 0.0  # keeps the graph intact; finite even if a logit is not
        aux, target = aux[salt], target[salt]
        return sum(self.loss(aux[:, i : i + 1], target) for i in range(aux.shape[1]))


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
                  model: torch.nn.Module, aux_weight: float) -> ResizedTargetLoss:
    """The registered loss `loss` (or a loss function), wrapped for `model`'s training outputs
    (see ResizedTargetLoss); aux_weight: each deep-supervision level's weight (config key aux_weight)."""
    return ResizedTargetLoss(get_loss(loss) if isinstance(loss, str) else loss, aux_weight=aux_weight)


def build_learner(dls, model: torch.nn.Module, loss: str, wd: float, cbs: list, aux_weight: float) -> Learner:
    """A Learner with fastai's default Adam (decoupled weight decay), as in the blog."""
    return Learner(dls, model, loss_func=training_loss(loss, model, aux_weight), metrics=[CompetitionMetric()],
                   wd=wd, cbs=cbs)
