"""RLE: hand cases, errors, and a round trip that reproduces the real train.csv exactly."""

import numpy as np
import pandas as pd
import pytest

from saltnet.data.pngio import read_mask
from saltnet.data.rle import rle_decode, rle_encode


def test_column_major_one_indexed():
    mask = np.zeros((3, 3), bool)
    mask[0:2, 0] = True   # pixels 1, 2 (first column, top to bottom)
    mask[2, 1] = True     # pixel 6 (second column, bottom)
    mask[0, 2] = True     # pixel 7
    assert rle_encode(mask) == "1 2 6 2"
    assert np.array_equal(rle_decode("1 2 6 2", (3, 3)), mask)


def test_empty_and_full():
    assert rle_encode(np.zeros((4, 4), bool)) == ""
    assert rle_encode(np.ones((4, 4), bool)) == "1 16"
    assert not rle_decode("", (4, 4)).any()


@pytest.mark.parametrize("bad, message", [
    ("1 2 3", "odd number"),
    ("1 x", "not a positive integer"),
    ("0 2", "1-indexed"),
    ("5 3 6 1", "sorted and disjoint"),
    ("9 2", "past the"),
])
def test_malformed_rle_is_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        rle_decode(bad, (3, 3))


def test_random_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        mask = rng.random((101, 101)) < rng.random()
        assert np.array_equal(rle_decode(rle_encode(mask)), mask)


def test_encoding_real_masks_reproduces_train_csv(real_data):
    table = pd.read_csv(real_data / "train.csv", dtype=str, keep_default_na=False)
    mismatches = [row.id for row in table.itertuples()
                  if rle_encode(read_mask(real_data / "train/masks" / f"{row.id}.png")) != row.rle_mask]
    assert len(table) == 3000 and mismatches == []
