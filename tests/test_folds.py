"""Fold split: every id once, stratified by coverage class, identical for the same seed."""

import numpy as np
import pytest

from saltnet.data.folds import coverage_class, split_folds


def fake_masks(n=230, seed=0):
    rng = np.random.default_rng(seed)
    coverage = rng.choice([0.0, 0.05, 0.3, 0.7, 1.0], size=n, p=[0.4, 0.15, 0.15, 0.15, 0.15])
    masks = np.zeros((n, 10, 10), np.uint8)
    for m, c in zip(masks, coverage):
        m.flat[: int(round(c * 100))] = 1
    return np.array([f"id{i:04d}" for i in range(n)]), masks


def test_classes():
    _, masks = fake_masks(5, seed=1)
    coverage, classes = coverage_class(masks)
    assert np.all((classes == 0) == (coverage == 0)) and classes.max() <= 10


def test_each_id_once_and_balanced_per_class():
    ids, masks = fake_masks()
    table = split_folds(ids, masks, n_folds=5, seed=7)
    assert sorted(table["id"]) == sorted(ids) and set(table["fold"]) == set(range(5))
    sizes = table["fold"].value_counts()
    assert sizes.max() - sizes.min() <= 1
    for _, group in table.groupby("coverage_class"):
        per_fold = group["fold"].value_counts().reindex(range(5), fill_value=0)
        assert per_fold.max() - per_fold.min() <= 1


def test_deterministic_for_a_seed_and_different_for_another():
    ids, masks = fake_masks()
    first, again = split_folds(ids, masks, 5, seed=3), split_folds(ids, masks, 5, seed=3)
    assert first.equals(again)
    assert not first["fold"].equals(split_folds(ids, masks, 5, seed=4)["fold"])


def test_fewer_than_two_folds_is_an_error():
    ids, masks = fake_masks(10)
    with pytest.raises(ValueError, match="at least 2"):
        split_folds(ids, masks, 1, seed=0)
