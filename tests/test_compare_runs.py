"""tools/compare_runs.py: two runs scored on the folds both predicted, on the same images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import load_tool
from saltnet.runtime.atomic import write_npz

compare_runs = load_tool("compare_runs")


def _run(root: Path, masks: np.ndarray, folds: dict[int, list[int]], probs) -> Path:
    """A run's results/: packed/train.npz and predict/fold{k}/oof.npz; probs(i) -> (H, W) of image i."""
    ids = np.array([f"id{i}" for i in range(len(masks))])
    write_npz(root / "packed/train.npz", ids=ids, images=np.zeros(masks.shape, np.uint8), masks=masks)
    for fold, rows in folds.items():
        (root / f"predict/fold{fold}").mkdir(parents=True)
        write_npz(root / f"predict/fold{fold}/oof.npz", ids=ids[rows],
                  probs=np.stack([probs(i) for i in rows]).astype(np.float16))
    return root


def test_runs_are_scored_on_their_common_folds_only(tmp_path):
    masks = np.zeros((8, 12, 12), np.uint8)
    masks[:4, 2:9, 3:10] = 255  # four salt images, four empty
    split = {0: [0, 4], 1: [1, 5], 2: [2, 6], 3: [3, 7]}
    perfect = lambda i: masks[i] / 255.0  # noqa: E731
    # the full run is right everywhere; the variant (folds 0, 1 only) misses image 1's salt
    full = _run(tmp_path / "full", masks, split, perfect)
    part = _run(tmp_path / "part", masks, {k: split[k] for k in (0, 1)},
                lambda i: np.zeros(masks.shape[1:]) if i == 1 else perfect(i))
    out = compare_runs.main([str(full), str(part)])
    assert out["folds"] == [0, 1] and out["n_images"] == 4
    assert out[str(full)]["raw"] == 1.0 and out[str(full)]["per_fold_raw"] == {0: 1.0, 1: 1.0}
    assert out[str(part)]["raw"] == 0.75 and out[str(part)]["per_fold_raw"] == {0: 1.0, 1: 0.5}


def test_folds_holding_other_images_are_refused(tmp_path):
    masks = np.zeros((4, 12, 12), np.uint8)
    zeros = lambda i: np.zeros(masks.shape[1:])  # noqa: E731
    a = _run(tmp_path / "a", masks, {0: [0, 1], 1: [2, 3]}, zeros)
    b = _run(tmp_path / "b", masks, {0: [0, 2], 1: [1, 3]}, zeros)
    with pytest.raises(SystemExit, match="other images"):
        compare_runs.main([str(a), str(b)])
