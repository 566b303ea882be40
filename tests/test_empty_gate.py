"""tools/empty_gate.py: what a better empty/non-empty decision could give, on out-of-fold predictions
whose answer is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import load_tool
from saltnet.evaluation.metric import image_scores
from saltnet.evaluation.oof import OofData
from saltnet.evaluation.postprocess import apply_postprocess

EMPTY_GATE = load_tool("empty_gate")


def _oof(n: int = 80, side: int = 20) -> OofData:
    """4 folds; even images hold a 6x6 square of salt predicted at 0.9; half of the odd (empty) images carry
    a faint 3x3 blob at 0.6 that a 0.5 threshold turns into a wrong mask."""
    rng = np.random.default_rng(0)
    probs = np.full((n, side, side), 0.05, dtype=np.float16)
    truth = np.zeros((n, side, side), dtype=bool)
    for i in range(n):
        r, c = rng.integers(0, side - 6, size=2)
        if i % 2 == 0:
            truth[i, r:r + 6, c:c + 6] = True
            probs[i, r:r + 6, c:c + 6] = 0.9
        elif (i // 8) % 2 == 1:
            probs[i, r:r + 3, c:c + 3] = 0.6
    images = rng.integers(0, 255, size=(n, side, side), dtype=np.uint8)
    folds = (np.arange(n) // 2) % 4  # each fold: salt images, blobs and clean empty images
    return OofData(np.array([f"id{i}" for i in range(n)]), folds, images, probs, truth)


def test_features_are_one_row_of_eight_per_image():
    oof = _oof()
    x = EMPTY_GATE.features(oof)
    assert x.shape == (80, 8)
    assert np.allclose(x[:, 0], oof.probs.reshape(80, -1).max(1), atol=1e-3)  # the peak first


def test_a_separable_empty_decision_is_learnt_on_the_other_folds():
    oof = _oof()
    plain = image_scores(apply_postprocess(oof.probs, 0.5, 0), oof.truth).mean()
    assert plain == pytest.approx(0.75)  # the 20 blob images of 80 score 0
    result = EMPTY_GATE.stacked_heldout(oof, EMPTY_GATE.CLASSIFIERS["logistic"])
    assert result["held_out"] == pytest.approx(1.0)
    assert set(result["chosen"]) == {"fold 0", "fold 1", "fold 2", "fold 3"}


def test_a_folder_without_predictions_is_refused(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    with pytest.raises(SystemExit):
        EMPTY_GATE.main([str(tmp_path)])
    assert "no predict/fold*/oof.npz" in capsys.readouterr().err


def test_training_folds_of_one_kind_give_that_kind_instead_of_failing():
    oof = _oof()
    oof.truth[oof.fold < 3] = False  # folds 0-2 without salt: fold 3's classifier would see one kind only
    result = EMPTY_GATE.stacked_heldout(oof, EMPTY_GATE.CLASSIFIERS["logistic"])
    assert 0.0 <= result["held_out"] <= 1.0
