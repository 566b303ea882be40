"""The analyses of a run's out-of-fold predictions (saltnet.evaluation.analyses): where the points go,
and what of the post-processing's gain holds on images it was not chosen on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from saltnet.evaluation.analyses import coverage_losses, heldout_postprocess
from saltnet.evaluation.oof import OofData, load_oof
from saltnet.runtime.atomic import write_npz


def written_oof(tmp_path, masks: np.ndarray, probs: np.ndarray, folds: dict[int, list[int]]) -> OofData:
    """The run's files written as the pipeline writes them, then read back as the analysis rules do."""
    ids = np.array([f"id{i}" for i in range(len(masks))])
    write_npz(tmp_path / "packed/train.npz", ids=ids, images=np.zeros(masks.shape, np.uint8), masks=masks)
    fold_of = np.empty(len(ids), dtype=int)
    for fold, rows in folds.items():
        write_npz(tmp_path / f"predict/fold{fold}/oof.npz", ids=ids[rows], probs=probs[rows].astype(np.float16))
        fold_of[rows] = fold
    table = pd.DataFrame({"id": ids, "fold": fold_of})
    return load_oof(tmp_path / "packed/train.npz", {k: tmp_path / f"predict/fold{k}/oof.npz" for k in folds},
                    folds_table=table)


def test_points_lost_add_up_and_the_bands_and_misses_are_counted(tmp_path):
    side = 20
    masks = np.zeros((6, side, side), np.uint8)
    masks[2, :, 5:10] = 1  # a vertical band (25%), which the "net" misses
    masks[3, 4:16, 4:16] = 1  # 36% salt, predicted exactly
    masks[4, 0, 0] = 1  # 0.25% salt, missed
    probs = np.full((6, side, side), 0.2, np.float32)  # empty 0 and the misses: flat 0.2
    probs[1, 3:8, 3:8] = 0.9  # empty image 1 given a mask
    probs[3][masks[3] == 1] = 0.95
    probs[5] = 0.85  # empty image 5 given the whole image
    oof = written_oof(tmp_path, masks, probs, {0: [0, 1, 2], 1: [3, 4, 5]})
    out = coverage_losses(oof, {"threshold": 0.5, "min_area": 0, "min_peak": 0.0})
    groups = out["groups"]
    assert out["score"] == 2 / 6  # images 0 and 3 right
    assert groups["empty"] == {"n": 3, "score": 1 / 3, "points_lost": 2 / 6, "predicted_empty": 1}
    assert groups["vertical bands"] == {"n": 1, "score": 0.0, "points_lost": 1 / 6, "predicted_empty": 1}
    assert groups["salt (0%, 1%]"]["n"] == 1 and groups["salt (0%, 1%]"]["predicted_empty"] == 1
    partition = [g for name, g in groups.items() if name != "vertical bands"]
    assert sum(g["n"] for g in partition) == 6
    assert np.isclose(sum(g["points_lost"] for g in partition), 1 - out["score"])
    assert out["salt_predicted_empty"] == 2 and out["empty_given_a_mask"] == 2
    assert out["peak_probability"]["[0.1, 0.3)"] == {"empty": 1, "salt": 2}
    assert out["peak_probability"]["[0.8, 0.9)"] == {"empty": 2, "salt": 0}  # 0.9 in float16 is 0.8999
    assert out["peak_probability"]["[0.9, 1.0]"] == {"empty": 0, "salt": 1}


def test_a_setting_that_fits_one_fold_only_is_optimistic_in_sample(tmp_path):
    """Fold 0's empty images carry small blobs (a min_area removes them), fold 1's salt images are small
    masks predicted exactly (the same min_area empties them): chosen on both, the search keeps one
    setting for both; chosen on one fold and scored on the other, each fold gets the other's."""
    side = 20
    masks = np.zeros((8, side, side), np.uint8)
    probs = np.zeros((8, side, side), np.float32)
    for i in range(4):  # fold 0: empty truth, a 3x3 blob of 0.9
        probs[i, 5:8, 5:8] = 0.9
    for i in range(4, 8):  # fold 1: 3x3 salt, predicted exactly
        masks[i, 5:8, 5:8] = 1
        probs[i, 5:8, 5:8] = 0.9
    oof = written_oof(tmp_path, masks, probs, {0: [0, 1, 2, 3], 1: [4, 5, 6, 7]})
    found = heldout_postprocess(oof, threshold=0.5, min_area="auto", min_peak=0)
    assert found["raw"] == 0.5 and found["in_sample"] == 0.5
    assert found["held_out"] == 0.0 and found["optimism"] == pytest.approx(0.5)
    assert found["parts"]["fold 0"]["setting"]["min_area"] == 0  # chosen on fold 1: keep the small masks
    assert found["parts"]["fold 1"]["setting"]["min_area"] > 9  # chosen on fold 0: empty the blobs


def test_one_fold_is_split_in_two_seeded_halves(tmp_path):
    masks = np.zeros((10, 8, 8), np.uint8)
    masks[:, :4] = 1
    oof = written_oof(tmp_path, masks, masks.astype(np.float32), {2: list(range(10))})
    found = heldout_postprocess(oof, 0.5, 0, 0)
    assert list(found["parts"]) == ["half 0", "half 1"] and found["held_out"] == found["in_sample"] == 1.0
    assert sum(p["images"] for p in found["parts"].values()) == 10
