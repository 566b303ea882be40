"""A download as the Kaggle CLI delivers it (a zip of train.zip, test.zip and the CSVs, or the folder it
was unpacked to) packs to the very arrays of the unpacked layout; unpacking happens in the pipeline's
folder, never in the user's, and a broken download is named."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import run_snakemake, write_config
from saltnet.data.kaggle import is_kaggle_download, unpack_kaggle
from saltnet.data.pack import DataError, load_packed, pack_competition


def inner_zip(root: Path, part: str, prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted((root / part).rglob("*.png")):
            archive.write(path, prefix + str(path.relative_to(root / part)))
    return buffer.getvalue()


def kaggle_zip(root: Path, out: Path, drop: str | None = None, prefix: str = "") -> Path:
    """The layout of the competition's Kaggle download, made from the unpacked folder `root`."""
    members = {"train.zip": inner_zip(root, "train", prefix), "test.zip": inner_zip(root, "test"),
               **{name: (root / name).read_bytes() for name in ("train.csv", "depths.csv", "sample_submission.csv")}}
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in members.items():
            if name != drop:
                archive.writestr(name, content)
    return out


def same_arrays(a: Path, b: Path) -> None:
    for (x, y) in zip(pack_competition(a), pack_competition(b)):
        assert x.ids.tolist() == y.ids.tolist() and np.array_equal(x.images, y.images)
        assert (x.masks is None and y.masks is None) or np.array_equal(x.masks, y.masks)


@pytest.mark.parametrize("prefix", ["", "train/"])
def test_the_zip_unpacks_to_the_same_arrays(small_data, tmp_path, prefix):
    download = kaggle_zip(small_data, tmp_path / "tgs-salt-identification-challenge.zip", prefix=prefix)
    assert is_kaggle_download(download) and not is_kaggle_download(small_data)
    same_arrays(unpack_kaggle(download, tmp_path / "out"), small_data)


def test_the_folder_with_inner_zips_unpacks_too(small_data, tmp_path):
    folder = tmp_path / "download"
    with zipfile.ZipFile(kaggle_zip(small_data, tmp_path / "k.zip")) as archive:
        archive.extractall(folder)
    before = sorted(p.name for p in folder.iterdir())
    assert is_kaggle_download(folder)
    same_arrays(unpack_kaggle(folder, tmp_path / "out"), small_data)
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written in the user's folder


def test_a_download_without_test_zip_is_named(small_data, tmp_path):
    download = kaggle_zip(small_data, tmp_path / "k.zip", drop="test.zip")
    with pytest.raises(DataError, match=r"k.zip: a Kaggle download .* test.zip not found"):
        unpack_kaggle(download, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_a_member_outside_the_folder_is_refused(small_data, tmp_path):
    download = tmp_path / "k.zip"
    with zipfile.ZipFile(download, "w") as archive:
        for name in ("train.csv", "sample_submission.csv"):
            archive.writestr(name, b"x")
        archive.writestr("train.zip", inner_zip(small_data, "train", prefix="../"))
        archive.writestr("test.zip", inner_zip(small_data, "test"))
    with pytest.raises(DataError, match="points outside the folder"):
        unpack_kaggle(download, tmp_path / "out")


@pytest.mark.snakemake
def test_the_pipeline_takes_the_zip_as_data_dir(small_data, tmp_path):
    download = kaggle_zip(small_data, tmp_path / "tgs-salt-identification-challenge.zip")
    workdir = tmp_path / "run"
    write_config(workdir, data_dir=str(download))
    run_snakemake(workdir, "results/folds.parquet")
    assert (workdir / "results/data/train/images").is_dir()
    train = load_packed(workdir / "results/packed/train.npz")
    assert train.ids.tolist() == pack_competition(small_data)[0].ids.tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "tgs-salt-identification-challenge.zip"]
