"""Pseudo-labels: the test images a fold's model labels confidently, as extra training images.

The rule is 1st place's (ybabakhin/kaggle_salt_bes_phalanx): an image's confidence is the share of its
pixels whose probability is below `low` or above `high`; images with at least `share` are kept,
labelled at 0.5. What keeps the out-of-fold score honest is where the probabilities come from: fold
k's pseudo stage takes them from fold k's own finetune model, which never trained on fold k's images
(cross-fold pseudo-labels, ak110/kaggle_salt). Labels from the fold ensemble would carry every other
fold's memory of fold k's images (and masks) into fold k's training, raising its score more than the
leaderboard's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PseudoLabels", "confidence", "select_pseudo_labels", "rule_quality"]


@dataclass(frozen=True)
class PseudoLabels:
    """kept: (K,) indices into the test images; masks: (K, H, W) uint8 in {0, 1}; confidence: (N,) of all."""

    kept: np.ndarray
    masks: np.ndarray
    confidence: np.ndarray

    def summary(self, low: float, high: float, share: float) -> dict:
        """What labels.json records: the rule, how many images it kept and of which kind."""
        n = len(self.confidence)
        empty = int((self.masks.reshape(len(self.masks), -1).max(axis=1) == 0).sum()) if len(self.masks) else 0
        return {"rule": {"low": low, "high": high, "share": share}, "test_images": n, "kept": int(len(self.kept)),
                "kept_share": round(len(self.kept) / n, 4) if n else 0.0, "kept_empty": empty,
                "confidence_median": round(float(np.median(self.confidence)), 4) if n else None}


def confidence(probs: np.ndarray, low: float, high: float) -> np.ndarray:
    """(N, H, W) probabilities -> (N,) share of each image's pixels below `low` or above `high`."""
    p = probs.astype(np.float32)
    return ((p < low) | (p > high)).reshape(len(p), -1).mean(axis=1)


def select_pseudo_labels(probs: np.ndarray, low: float, high: float, share: float) -> PseudoLabels:
    """(N, H, W) test probabilities of one model -> the images at least `share` confident, masked at 0.5."""
    conf = confidence(probs, low, high)
    kept = np.flatnonzero(conf >= share)
    masks = (probs[kept].astype(np.float32) > 0.5).astype(np.uint8)
    return PseudoLabels(kept=kept, masks=masks, confidence=conf)


def rule_quality(probs: np.ndarray, truth: np.ndarray, rules: list[tuple[float, float, float]]) -> list[dict]:
    """How a rule would do on labelled images, e.g. a run's out-of-fold predictions (a model that never saw
    them, as fold k's finetune model never saw the test set): probs (N, H, W), truth (N, H, W) bool; rules
    [(low, high, share)] -> per rule the share of images kept, the competition score of their labels
    (probs > 0.5, as select_pseudo_labels labels them) against the truth, the share of those that are empty,
    and the score of the images left out."""
    from saltnet.evaluation.metric import image_scores

    scores = image_scores(probs.astype(np.float32) > 0.5, truth)
    empty = truth.reshape(len(truth), -1).max(axis=1) == 0
    rows = []
    for low, high, share in rules:
        kept = confidence(probs, low, high) >= share
        rows.append({"low": low, "high": high, "share": share, "kept_share": float(kept.mean()),
                     "label_score": float(scores[kept].mean()) if kept.any() else None,
                     "kept_empty_share": float(empty[kept].mean()) if kept.any() else None,
                     "left_out_score": float(scores[~kept].mean()) if (~kept).any() else None})
    return rows
