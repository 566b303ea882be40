"""Segmentation losses and their registry.

Lovász hinge: Berman, Rannen Triki, Blaschko, "The Lovász-Softmax loss: A tractable surrogate
for the optimization of the intersection-over-union measure in neural networks", CVPR 2018
(per-image variant, vectorised over the batch here). The symmetric variant averages the loss on
the salt and on the background, as in the blog this pipeline follows.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "get_loss", "lovasz_hinge", "symmetric_lovasz", "symmetric_lovasz_elu", "bce", "bce_dice",
           "symmetric_lovasz_bce"]


def _lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """gt_sorted: (N, P) float in {0,1}, sorted by decreasing error -> (N, P) Jaccard increments."""
    gts = gt_sorted.sum(dim=1, keepdim=True)
    intersection = gts - gt_sorted.cumsum(dim=1)
    union = gts + (1.0 - gt_sorted).cumsum(dim=1)
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)


def _sorted_errors(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logits, target: (N, 1, H, W) -> the hinge errors 1 - logit * sign, sorted decreasing per image,
    and the labels in that order: both (N, H*W) float."""
    logits = logits.float().flatten(1)
    labels = target.float().flatten(1)
    errors = 1.0 - logits * (2.0 * labels - 1.0)
    errors_sorted, perm = torch.sort(errors, dim=1, descending=True)
    return errors_sorted, torch.gather(labels, 1, perm)


def _hinge_weights(errors_sorted: torch.Tensor, elu: bool) -> torch.Tensor:
    return F.elu(errors_sorted) + 1.0 if elu else F.relu(errors_sorted)


def lovasz_hinge(logits: torch.Tensor, target: torch.Tensor, elu: bool = False) -> torch.Tensor:
    """logits: (N, 1, H, W) float; target: (N, 1, H, W) in {0,1} -> scalar, mean over images.

    elu: weight the sorted errors by elu(e) + 1 instead of relu(e), so pixels already beyond the margin
    keep a small gradient (the 1st place's variant, ybabakhin/kaggle_salt_bes_phalanx).
    """
    errors_sorted, labels_sorted = _sorted_errors(logits, target)
    return (_hinge_weights(errors_sorted, elu) * _lovasz_grad(labels_sorted)).sum(dim=1).mean()


def symmetric_lovasz(logits: torch.Tensor, target: torch.Tensor, elu: bool = False) -> torch.Tensor:
    """(L(logits, y) + L(-logits, 1 - y)) / 2: the hinge on salt and on background.

    The flipped hinge's errors, 1 - (-logit) * (2 (1 - y) - 1), are the same numbers as the plain
    one's, so one sort serves both: only the labels (y, then 1 - y) differ in the Jaccard increments.
    Half the sorts of two lovasz_hinge calls, the costliest part of the loss.
    """
    errors_sorted, labels_sorted = _sorted_errors(logits, target)
    grad = _lovasz_grad(labels_sorted) + _lovasz_grad(1.0 - labels_sorted)
    return (_hinge_weights(errors_sorted, elu) * grad).sum(dim=1).mean() / 2


def symmetric_lovasz_elu(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """symmetric_lovasz with elu(e) + 1 in place of relu(e) (see lovasz_hinge)."""
    return symmetric_lovasz(logits, target, elu=True)


def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel-wise binary cross-entropy with logits, mean over pixels."""
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def bce_dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE plus (1 - soft Dice) per image, averaged: a smooth warm-up loss before Lovasz.

    The BCE(+Dice) phase followed by Lovasz is what the top TGS teams did (e.g. 1st place,
    ybabakhin/kaggle_salt_bes_phalanx; 4th place, SeuTao/TGS-Salt-Identification). Empty masks have
    Dice 1 when the prediction is empty too (the +1 smoothing).
    """
    probs, labels = torch.sigmoid(logits.float()).flatten(1), target.float().flatten(1)
    dice = (2 * (probs * labels).sum(1) + 1) / (probs.sum(1) + labels.sum(1) + 1)
    return bce(logits, target) + (1 - dice).mean()


def symmetric_lovasz_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """symmetric_lovasz plus pixel-wise BCE, weighted 1 : 1: the hinge optimises the IoU of each image,
    the BCE keeps a gradient on every pixel (the hinge's goes to the worst-ranked pixels of an image).

    The cross-entropy + Lovász sum of the 15th place, trained from scratch (adam9500370/Kaggle-TGS).
    """
    return symmetric_lovasz(logits, target) + bce(logits, target)


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "lovasz_hinge": lovasz_hinge,
    "symmetric_lovasz": symmetric_lovasz,
    "symmetric_lovasz_elu": symmetric_lovasz_elu,
    "bce": bce,
    "bce_dice": bce_dice,
    "symmetric_lovasz_bce": symmetric_lovasz_bce,
}


def get_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Loss by name; an unknown name raises KeyError listing the choices."""
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[name]
