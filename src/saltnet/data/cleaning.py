"""Training images to leave out (config `exclude`): named filters over a fold's training masks.

An excluded image stays in its fold: it is scored out-of-fold like any other (the test set's labels
were drawn the same way); only training stops seeing it. One entry so far:

- `vertical_masks`: masks in which every column is all salt or all sediment (vertical bands from top to
  bottom), neither empty nor the whole image. 83 of the 3000 training masks are such bands; the
  out-of-fold predictions of a 4-fold CPU run scored them 0.13 on average (66 of the 83 predicted
  empty: the image shows no salt where the band is) and they cost that run 0.024 of its 0.79.
  Left out of training on two folds of that run's schedule, the other images gained 0.0025 and the
  bands lost 0.13 (the net no longer paints them): no gain where, as in the competition, the images
  scored hold bands too (docs/measured.md). Not in a preset.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["FILTERS", "SMALL_COVERAGE", "vertical_masks", "small_masks", "excluded", "repeated"]

SMALL_COVERAGE = 0.1  # the coverage class "small" of the reports: salt on (0, 10%] of the image


def vertical_masks(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) masks in {0, 1} -> (N,) bool: every column constant, the mask neither empty nor full."""
    salt = masks.astype(bool)
    columns_constant = (salt.min(axis=1) == salt.max(axis=1)).all(axis=1)
    area = salt.reshape(len(salt), -1).sum(axis=1)
    return columns_constant & (area > 0) & (area < salt[0].size)


def small_masks(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) masks in {0, 1} -> (N,) bool: salt on more than none and at most SMALL_COVERAGE of the image.

    The images that lose the most out-of-fold: 15% of the training set, a third of the points lost by a
    CPU preset run, about 40% of them predicted empty (docs/measured.md). Config `repeat` shows them
    twice per epoch."""
    coverage = masks.reshape(len(masks), -1).astype(bool).mean(axis=1)
    return (coverage > 0) & (coverage <= SMALL_COVERAGE)


FILTERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"vertical_masks": vertical_masks,
                                                          "small_masks": small_masks}


def excluded(masks: np.ndarray, names: list[str] | tuple[str, ...], key: str = "exclude") -> np.ndarray:
    """(N, H, W) masks -> (N,) bool: the images any of the named filters leaves out of training (key: the
    config key that named them, for the error)."""
    out = np.zeros(len(masks), dtype=bool)
    for name in names:
        if name not in FILTERS:
            raise KeyError(f"config key {key}: unknown filter {name!r}; choose from {sorted(FILTERS)}")
        out |= FILTERS[name](masks)
    return out


def repeated(masks: np.ndarray, names: list[str] | tuple[str, ...]) -> np.ndarray:
    """(N, H, W) masks -> (N,) bool: the images any of the named filters shows twice per epoch (config repeat)."""
    return excluded(masks, names, key="repeat")
