"""Fold ensemble: the mean of the folds' probabilities, one fold in memory at a time.

The blog sums TTA logits over folds and scales by 2/K; we average probabilities instead, which
keeps the ensemble a probability and the submission threshold meaningful.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

__all__ = ["mean_fold_probs"]


def mean_fold_probs(paths: Iterable[str | Path]) -> tuple[np.ndarray, np.ndarray]:
    """paths: fold .npz files with ids (N,) and probs (N, H, W) -> (ids, mean probs float16)."""
    total, ids, count = None, None, 0
    for path in paths:
        with np.load(path, allow_pickle=False) as npz:
            fold_ids, probs = npz["ids"], npz["probs"]
        if ids is None:
            ids, total = fold_ids, np.zeros(probs.shape, dtype=np.float32)
        elif not np.array_equal(ids, fold_ids):
            raise ValueError(f"{path}: ids differ from the first fold's; folds must predict the same images")
        total += probs
        count += 1
    if count == 0:
        raise ValueError("no fold predictions to ensemble")
    return ids, (total / count).astype(np.float16)
