"""The TGS competition metric: mean over images of the precision at IoU thresholds 0.50..0.95.

Per the competition's evaluation page, each image's mask is one object, so per image the score is
the mean over t in {0.50, 0.55, ..., 0.95} of [IoU > t] (strict), with 1 when truth and prediction
are both empty and 0 when exactly one is. Scores are computed at the native 101x101 resolution.
"""

from __future__ import annotations

import numpy as np

__all__ = ["THRESHOLDS_PCT", "image_scores", "competition_score"]

# Thresholds in percent, kept as integers so "IoU > t" is exact: inter/union > t/100.
THRESHOLDS_PCT = np.arange(50, 100, 5)


def image_scores(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """pred, truth: (N, H, W) bool -> (N,) float64 per-image scores. Inputs are not modified."""
    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    if pred.shape != truth.shape or pred.ndim != 3:
        raise ValueError(f"expected two (N, H, W) masks of one shape, got {pred.shape} and {truth.shape}")
    inter = (pred & truth).sum(axis=(1, 2)).astype(np.int64)
    union = (pred | truth).sum(axis=(1, 2)).astype(np.int64)
    hits = 100 * inter[:, None] > THRESHOLDS_PCT[None, :] * union[:, None]  # (N, 10)
    scores = hits.mean(axis=1)
    scores[union == 0] = 1.0  # both empty
    return scores


def competition_score(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean of :func:`image_scores` over the images."""
    return float(image_scores(pred, truth).mean())
