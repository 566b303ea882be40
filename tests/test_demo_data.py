"""The demo data has the competition layout and the real data's quirks."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import run_snakemake, write_config
from saltnet.data.demo import MANIFEST, check_demo_folder, make_demo_data
from saltnet.data.pack import pack_competition
from saltnet.data.rle import rle_encode


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
        make_demo_data(demo, n_train=4, n_test=1, seed=0)


def test_the_demo_folder_is_checked_file_by_file(tmp_path):
    folder = tmp_path / "demo_data"
    make_demo_data(folder, n_train=6, n_test=2, seed=1)
    check_demo_folder(folder)  # exactly what the rule wrote: fine
    (folder / "notes.txt").write_text("my notes")
    with pytest.raises(ValueError, match=r"1 file\(s\) in it were added, changed or removed since \(notes.txt\)"):
        check_demo_folder(folder)
    (folder / "notes.txt").unlink()
    (folder / "train.csv").write_text("id,rle_mask\n")
    with pytest.raises(ValueError, match="train.csv"):
        check_demo_folder(folder)
    (folder / MANIFEST).unlink()
    with pytest.raises(ValueError, match="not made by the make_demo_data rule"):
        check_demo_folder(folder)


@pytest.mark.snakemake
def test_user_data_in_the_demo_folder_survives_forceall(tmp_path):
    """data_dir: demo with a user's folder at results/demo_data: refused before any job, nothing deleted."""
    write_config(tmp_path)
    user = tmp_path / "results/demo_data"
    user.mkdir(parents=True)
    (user / "train.csv").write_text("id,rle_mask\nmine,1 5\n")
    proc = run_snakemake(tmp_path, "--forceall", check=False)
    assert proc.returncode != 0
    assert "results/demo_data exists but was not made by the make_demo_data rule" in proc.stderr
    assert (user / "train.csv").read_text() == "id,rle_mask\nmine,1 5\n"


@pytest.mark.snakemake
def test_a_data_dir_at_the_demo_path_is_data_not_the_demo(tmp_path):
    """Pointing data_dir at results/demo_data is a choice of data: no rule makes or replaces that folder."""
    make_demo_data(tmp_path / "results/demo_data", n_train=6, n_test=2, seed=1)
    (tmp_path / "results/demo_data" / "extra.txt").write_text("mine")
    write_config(tmp_path, data_dir="results/demo_data")
    proc = run_snakemake(tmp_path, "-n", "--forceall")
    assert "make_demo_data" not in proc.stdout and "pack_data" in proc.stdout
