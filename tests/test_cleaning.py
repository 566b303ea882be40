"""Training images left out by config `exclude`: the vertical-band filter, and that training skips
exactly those images while the fold still scores them."""

import numpy as np
import pytest

from conftest import STAGE
from saltnet.config.settings import TrainSettings
from saltnet.data.cleaning import excluded, vertical_masks


def _masks(*maps):
    return np.stack([np.asarray(m, dtype=np.uint8) for m in maps])


def test_vertical_bands_are_found_and_nothing_else():
    side = 101
    band = np.zeros((side, side))
    band[:, 30:60] = 1  # a vertical band, top to bottom
    two_bands = np.zeros((side, side))
    two_bands[:, :5] = 1
    two_bands[:, 90:] = 1
    blob = np.zeros((side, side))
    blob[40:70, 30:60] = 1
    almost = band.copy()
    almost[0, 30] = 0  # one pixel off: not a band
    horizontal = np.zeros((side, side))
    horizontal[60:, :] = 1  # every row constant, not every column
    empty, full = np.zeros((side, side)), np.ones((side, side))
    masks = _masks(band, two_bands, blob, almost, horizontal, empty, full)
    assert vertical_masks(masks).tolist() == [True, True, False, False, False, False, False]
    assert excluded(masks, ["vertical_masks"]).tolist() == [True, True, False, False, False, False, False]
    assert excluded(masks, []).tolist() == [False] * 7


def test_an_unknown_filter_is_named():
    with pytest.raises(KeyError, match="exclude: unknown filter 'stripes'.*vertical_masks"):
        excluded(_masks(np.zeros((4, 4))), ["stripes"])


def test_exclusion_changes_the_fingerprint_but_its_absence_does_not():
    """A fold trained without `exclude` resumes across the version that added the key; one trained
    with a filter never resumes one trained without it."""
    plain = TrainSettings(**STAGE).fingerprint(0, None, "data")
    assert TrainSettings(**STAGE, exclude=[]).fingerprint(0, None, "data") == plain
    assert TrainSettings(**STAGE, exclude=["vertical_masks"]).fingerprint(0, None, "data") != plain


def test_training_leaves_the_bands_out_and_the_fold_still_scores_them(tmp_path, monkeypatch):
    """Real training (one epoch, 32 px) on demo data with vertical bands planted in two training masks
    and one of the fold's own: the fit sees every training image but the two, the fold all of its own."""
    import torch

    import saltnet.training.fold as train
    from saltnet.data.demo import make_demo_data
    from saltnet.data.folds import split_folds
    from saltnet.data.pack import PackedData, pack_competition

    make_demo_data(tmp_path / "data", n_train=24, n_test=1, seed=5)
    data, _ = pack_competition(tmp_path / "data")
    folds = split_folds(data.ids, data.masks, 2, 0)
    train_idx, valid_idx = train.fold_indices(folds, data.ids, 0)
    masks = data.masks.copy()
    for i in (*train_idx[:2], valid_idx[0]):
        masks[i] = 0
        masks[i][:, 10:40] = 1
    data = PackedData(data.ids, data.images, masks)
    seen = {}
    real = train.make_dataloaders

    def spy(images, masks, fit_idx, score_idx, *args, **kwargs):
        seen["fit"], seen["score"] = fit_idx, score_idx
        return real(images, masks, fit_idx, score_idx, *args, **kwargs)

    monkeypatch.setattr(train, "make_dataloaders", spy)
    settings = TrainSettings(**STAGE, exclude=["vertical_masks"])
    train.train_fold(data, folds, 0, settings, tmp_path / "work", torch.device("cpu"))
    assert sorted(seen["fit"]) == sorted(train_idx[2:])
    assert sorted(seen["score"]) == sorted(valid_idx)
