"""K-fold split stratified by salt-coverage class, seeded: one table with a fold column.

Coverage classes follow the practice of many public TGS kernels:
class = ceil(10 * coverage), 0 for empty masks, 10 for full ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["coverage_class", "split_folds", "fold_indices"]


def coverage_class(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """masks: (N, H, W) {0,1} -> (coverage (N,) float in [0,1], class (N,) int in 0..10)."""
    coverage = masks.reshape(len(masks), -1).mean(axis=1)
    return coverage, np.ceil(coverage * 10).astype(int)


def split_folds(ids: np.ndarray, masks: np.ndarray, n_folds: int, seed: int) -> pd.DataFrame:
    """Columns id, coverage, coverage_class, fold; every id in exactly one fold.

    Within each class the ids are shuffled with `seed` and dealt round-robin, continuing the deal
    across classes so fold sizes differ by at most one.
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    if len(ids) < n_folds:
        raise ValueError(f"config key folds.n: cannot split {len(ids)} training images into {n_folds} folds; "
                         f"set folds.n to at most {len(ids)} (--config 'folds={{n: {min(len(ids), 5)}}}')")
    coverage, classes = coverage_class(masks)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(ids), dtype=np.int64)
    offset = 0
    for cls in np.unique(classes):
        members = rng.permutation(np.flatnonzero(classes == cls))
        fold[members] = (offset + np.arange(len(members))) % n_folds
        offset += len(members)
    return pd.DataFrame({"id": ids, "coverage": coverage, "coverage_class": classes, "fold": fold})


def fold_indices(folds: pd.DataFrame, ids: np.ndarray, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, valid_idx) into `ids` for `fold` of the fold table."""
    fold_of = folds.set_index("id")["fold"].reindex(ids)
    if fold_of.isna().any():
        raise ValueError(f"{int(fold_of.isna().sum())} packed ids are missing from the fold table")
    if fold not in set(fold_of):
        raise ValueError(f"fold {fold} is not in the fold table (folds: {sorted(set(fold_of))})")
    in_fold = fold_of.to_numpy() == fold
    return np.flatnonzero(~in_fold), np.flatnonzero(in_fold)
