"""tools/oof_losses.py: where the out-of-fold points go, on a run written by hand."""

from __future__ import annotations

import json

import numpy as np

from conftest import load_tool
from saltnet.runtime.atomic import write_npz

oof_losses = load_tool("oof_losses")


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
    ids = np.array([f"id{i}" for i in range(6)])
    write_npz(tmp_path / "packed/train.npz", ids=ids, images=np.zeros(masks.shape, np.uint8), masks=masks)
    for fold, rows in {0: [0, 1, 2], 1: [3, 4, 5]}.items():
        (tmp_path / f"predict/fold{fold}").mkdir(parents=True)
        write_npz(tmp_path / f"predict/fold{fold}/oof.npz", ids=ids[rows], probs=probs[rows].astype(np.float16))
    after = {"after": {"threshold": 0.5, "min_area": 0, "min_peak": 0.0}}
    (tmp_path / "postprocess.json").write_text(json.dumps(after))
    out = oof_losses.main([str(tmp_path)])
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
    only = oof_losses.main([str(tmp_path), "--folds", "1"])  # fold 1 alone: its setting searched there
    assert only["n_images"] == 3
