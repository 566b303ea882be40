"""The demo data has the competition layout and the real data's quirks."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from saltnet.dataset import pack_competition
from saltnet.demo import make_demo_data
from saltnet.rle import rle_encode


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "data"
    make_demo_data(root, n_train=60, n_test=10, seed=3)
    return root


def test_layout_and_quirks(demo):
    train = pd.read_csv(demo / "train.csv", dtype=str, keep_default_na=False)
    assert list(train.columns) == ["id", "rle_mask"] and len(train) == 60
    assert len(pd.read_csv(demo / "sample_submission.csv")) == 10
    assert set(pd.read_csv(demo / "depths.csv", dtype=str)["id"]) >= set(train["id"])
    modes = {"empty": set(), "full": set()}
    blank = 0
    for row in train.itertuples():
        image = Image.open(demo / "train/images" / f"{row.id}.png")
        pixels = np.asarray(image)
        assert image.mode == "RGB" and pixels.shape == (101, 101, 3)
        assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
        blank += int(pixels.max() == 0)
        mask = np.asarray(Image.open(demo / "train/masks" / f"{row.id}.png"))
        kind = "full" if mask.any() else "empty"
        modes[kind].add(mask.dtype.name)
        if mask.any():
            assert set(np.unique(mask)) == {0, 65535} or set(np.unique(mask)) == {65535}
        assert row.rle_mask == rle_encode(mask > 0)
    assert modes["empty"] == {"uint8"} and modes["full"] == {"uint16"}
    assert blank >= 1 and (train["rle_mask"] == "").sum() >= 5


def test_packs_like_real_data(demo):
    train, test = pack_competition(demo)
    assert train.images.shape == (60, 101, 101) and train.masks.max() == 1 and test.masks is None


def test_never_overwrites(demo):
    with pytest.raises(FileExistsError):
        make_demo_data(demo)
