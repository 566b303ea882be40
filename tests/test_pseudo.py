"""The pseudo-label stage's parts: which test images the rule keeps, that a fold trains on them without
scoring them, the small masks repeated, and the time limit that ends a stage early."""

import time

import numpy as np
import pytest
import torch

from conftest import STAGE
from saltnet.config.settings import TrainSettings
from saltnet.data.cleaning import repeated, small_masks
from saltnet.training.fold import train_fold
from saltnet.training.pseudo import confidence, rule_quality, select_pseudo_labels


def _probs(*maps):
    return np.stack([np.asarray(m, dtype=np.float16) for m in maps])


def test_the_rule_keeps_images_confident_enough_and_labels_them_at_one_half():
    sure_empty = np.full((10, 10), 0.05)
    sure_half = np.full((10, 10), 0.05)
    sure_half[:, :5] = 0.95
    unsure = np.full((10, 10), 0.5)
    mostly = np.full((10, 10), 0.9)
    mostly[:, :3] = 0.6  # 70% of the pixels above 0.8
    probs = _probs(sure_empty, sure_half, unsure, mostly)
    assert confidence(probs, 0.2, 0.8).tolist() == pytest.approx([1.0, 1.0, 0.0, 0.7])
    labels = select_pseudo_labels(probs, 0.2, 0.8, 0.9)
    assert labels.kept.tolist() == [0, 1]
    assert labels.masks[0].sum() == 0 and labels.masks[1].sum() == 50 and labels.masks[1][:, :5].all()
    assert select_pseudo_labels(probs, 0.2, 0.8, 0.7).kept.tolist() == [0, 1, 3]
    summary = labels.summary(0.2, 0.8, 0.9)
    assert summary["kept"] == 2 and summary["kept_share"] == 0.5 and summary["kept_empty"] == 1
    assert select_pseudo_labels(probs, 0.0, 1.0, 0.9).kept.size == 0  # low 0, high 1: the control keeps none


def test_small_masks_are_those_with_salt_on_at_most_a_tenth():
    masks = np.zeros((4, 10, 10), dtype=np.uint8)
    masks[1, 0, :10] = 1  # 10%
    masks[2, :2, :] = 1  # 20%
    masks[3, 0, 0] = 1  # 1%
    assert small_masks(masks).tolist() == [False, True, False, True]
    assert repeated(masks, ["small_masks"]).tolist() == [False, True, False, True]
    with pytest.raises(KeyError, match="config key repeat: unknown filter 'big'"):
        repeated(masks, ["big"])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from saltnet.data.demo import make_demo_data
    from saltnet.data.folds import split_folds
    from saltnet.data.pack import pack_competition

    root = tmp_path_factory.mktemp("pseudo")
    make_demo_data(root / "data", n_train=24, n_test=6, seed=5)
    data, test = pack_competition(root / "data")
    return data, test, split_folds(data.ids, data.masks, 2, 0)


def test_a_fold_trains_on_the_pseudo_labelled_images_and_scores_only_its_own(tiny, tmp_path, monkeypatch):
    """Real training (one epoch, 32 px): the fit sees the fold's training images, its small masks a second
    time and the 3 labelled test images; the score sees exactly the fold's own images."""
    import saltnet.training.fold as train

    data, test, folds = tiny
    seen = {}
    real = train.make_dataloaders

    def spy(images, masks, fit_idx, score_idx, *args, **kwargs):
        seen.update(images=images, masks=masks, fit=fit_idx, score=score_idx)
        return real(images, masks, fit_idx, score_idx, *args, **kwargs)

    monkeypatch.setattr(train, "make_dataloaders", spy)
    extra_masks = np.zeros((3, *test.images.shape[1:]), dtype=np.uint8)
    extra_masks[1, :50] = 1
    settings = TrainSettings(**STAGE, repeat=["small_masks"], valid_fraction=1.0)
    result = train.train_fold(data, folds, 0, settings, tmp_path / "work", torch.device("cpu"),
                              extra=(test.images[:3], extra_masks))
    train_idx, valid_idx = train.fold_indices(folds, data.ids, 0)
    n = len(data.ids)
    small = train_idx[small_masks(data.masks[train_idx])]
    assert sorted(seen["fit"]) == sorted([*train_idx, n, n + 1, n + 2, *small])
    assert sorted(seen["score"]) == sorted(valid_idx)
    assert np.array_equal(seen["images"][n:], test.images[:3]) and np.array_equal(seen["masks"][n:], extra_masks)
    assert result.epochs == 1


def test_the_time_limit_ends_the_stage_after_an_epoch_and_averages_what_it_has(tiny, tmp_path, caplog):
    data, _, folds = tiny
    settings = TrainSettings(**{**STAGE, "epochs": 3, "swa": 2})
    result = train_fold(
        data, folds, 0, settings, tmp_path / "short", torch.device("cpu"), time_limit_s=1e-3)
    assert result.epochs == 1 and len(result.history) == 1  # one epoch always; the next would pass the limit
    assert "time limit: 1 of 3 epochs done" in caplog.text
    full = train_fold(
        data, folds, 0, settings, tmp_path / "long", torch.device("cpu"), time_limit_s=3600)
    assert full.epochs == 3 and len(full.history) == 3


def test_the_budgets_deadline_ends_a_fold_that_started_late(tiny, tmp_path, caplog):
    """A generous time limit, but the budget's clock runs out after the first epoch (a fold that started late)."""
    data, _, folds = tiny
    settings = TrainSettings(**{**STAGE, "epochs": 3, "swa": 2})
    result = train_fold(data, folds, 0, settings, tmp_path / "late", torch.device("cpu"), time_limit_s=3600,
                        deadline=time.time() + 1e-3)
    assert result.epochs == 1 and len(result.history) == 1
    assert "past the budget's deadline: stopping" in caplog.text


def test_rule_quality_scores_the_kept_labels_against_the_truth():
    """Image 0: confident and right; 1: confident and wrong (salt everywhere, truth empty); 2: unsure."""
    truth = np.zeros((3, 4, 4), dtype=bool)
    truth[0, :2] = True
    probs = np.full((3, 4, 4), 0.5, dtype=np.float16)
    probs[0] = np.where(truth[0], 0.9, 0.1)
    probs[1] = 0.95
    rows = rule_quality(probs, truth, [(0.2, 0.8, 0.9), (0.0, 1.0, 0.9)])
    loose, none = rows
    assert loose["kept_share"] == 2 / 3 and loose["label_score"] == 0.5  # one perfect, one scored 0
    assert loose["kept_empty_share"] == 0.5 and loose["left_out_score"] == 1.0  # image 2: empty, predicted empty
    assert none["kept_share"] == 0.0 and none["label_score"] is None
