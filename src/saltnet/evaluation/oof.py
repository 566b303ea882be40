"""Out-of-fold predictions joined to the training images and masks they predict: one loader for the
post-processing search, the CV score, the report, the analyses and the leaderboard of a sweep."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from saltnet.data.pack import PackedData, load_packed

__all__ = ["OofData", "load_oof", "check_fold_ids", "run_oof_files"]


@dataclass
class OofData:
    """ids (N,) str, fold (N,) int, images (N, H, W) uint8, probs (N, H, W) float16, truth (N, H, W) bool."""

    ids: np.ndarray
    fold: np.ndarray
    images: np.ndarray
    probs: np.ndarray
    truth: np.ndarray


def load_oof(packed_train: str | Path | PackedData, oof: dict[int, str | Path],
             folds_table: pd.DataFrame | None = None) -> OofData:
    """Every fold's oof.npz ({fold: path}, in fold order) joined by id to its training image and mask
    (packed_train: results/packed/train.npz, or that file already loaded).

    folds_table: the run's fold table (results/folds.parquet); raise ValueError unless fold k's file holds
    exactly the ids the table puts in fold k (an out-of-fold score never scores an image its model saw).
    """
    train = packed_train if isinstance(packed_train, PackedData) else load_packed(packed_train)
    index = {sample_id: i for i, sample_id in enumerate(train.ids)}
    ids, folds, probs = [], [], []
    for fold, path in sorted(oof.items()):
        with np.load(path, allow_pickle=False) as npz:
            ids.append(npz["ids"])
            probs.append(npz["probs"])
        folds.append(np.full(len(ids[-1]), int(fold)))
        if folds_table is not None:
            check_fold_ids(ids[-1], folds_table, int(fold), path)
    ids = np.concatenate(ids)
    rows = np.array([index[i] for i in ids], dtype=np.int64)
    return OofData(ids, np.concatenate(folds), train.images[rows], np.concatenate(probs),
                   train.masks[rows].astype(bool))


def check_fold_ids(ids: np.ndarray, folds_table: pd.DataFrame, fold: int, path: str | Path) -> None:
    """Raise ValueError unless `ids` (of file `path`) are exactly fold `fold`'s ids in the fold table."""
    expected = set(folds_table.loc[folds_table["fold"] == fold, "id"])
    found = set(ids.tolist())
    if len(found) != len(ids) or found != expected:
        raise ValueError(
            f"{path}: holds {len(ids)} ids ({len(ids) - len(found)} repeated), fold {fold} of the fold table has "
            f"{len(expected)}; {len(found - expected)} are not in fold {fold} and {len(expected - found)} of it are "
            "missing: the predictions were made with another split (rerun predict_fold)")


def run_oof_files(results: str | Path) -> dict[int, Path]:
    """A finished run's results/ folder -> {fold: results/predict/fold{fold}/oof.npz} for the folds it predicted."""
    return {int(p.parent.name.removeprefix("fold")): p for p in sorted(Path(results).glob("predict/fold*/oof.npz"))}
