"""Each bad input gets a clear error naming the file or key; nothing half-written is left behind."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import run_snakemake, write_config
from saltnet.dataset import DataError, pack_competition
from saltnet.demo import make_demo_data


@pytest.fixture(scope="module")
def good_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("good") / "data"
    make_demo_data(root, n_train=12, n_test=4, seed=5)
    return root


@pytest.fixture
def data(good_data, tmp_path) -> Path:
    """A fresh, writable copy of a valid layout, for one test to break."""
    return Path(shutil.copytree(good_data, tmp_path / "data"))


def ids(data: Path, table: str = "train.csv") -> list[str]:
    return pd.read_csv(data / table, dtype=str, keep_default_na=False)["id"].tolist()


def salt_id(data: Path) -> str:
    train = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    return train.loc[train["rle_mask"] != "", "id"].iloc[0]


def expect_error(data: Path, *fragments: str) -> str:
    with pytest.raises(DataError) as info:
        pack_competition(data)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_valid_layout_packs(data):
    train, test = pack_competition(data)
    assert len(train.ids) == 12 and len(test.ids) == 4


def test_train_id_without_image(data):
    victim = ids(data)[3]
    (data / "train/images" / f"{victim}.png").unlink()
    expect_error(data, victim, "train.csv", "have no PNG", "train/images")


def test_image_without_row(data):
    shutil.copy(data / "train/images" / f"{ids(data)[0]}.png", data / "train/images/stray00001.png")
    expect_error(data, "stray00001", "have no row in")


def test_train_image_without_mask(data):
    victim = ids(data)[2]
    (data / "train/masks" / f"{victim}.png").unlink()
    expect_error(data, victim, "train/masks")


def test_truncated_png(data):
    path = data / "train/images" / f"{ids(data)[1]}.png"
    path.write_bytes(path.read_bytes()[:60])
    expect_error(data, str(path), "not a readable PNG")


def test_file_that_is_not_a_png(data):
    path = data / "test/images" / f"{ids(data, 'sample_submission.csv')[0]}.png"
    path.write_text("id,rle_mask\n")
    expect_error(data, str(path), "not a readable PNG")


def test_image_of_wrong_size(data):
    path = data / "train/images" / f"{ids(data)[4]}.png"
    Image.fromarray(np.zeros((128, 128, 3), np.uint8)).save(path)
    expect_error(data, str(path), "expected 101x101", "128x128")


def test_mask_of_wrong_size(data):
    path = data / "train/masks" / f"{ids(data)[4]}.png"
    Image.fromarray(np.zeros((100, 101), np.uint8)).save(path)
    expect_error(data, str(path), "expected 101x101")


def test_mask_with_more_than_two_values(data):
    path = data / "train/masks" / f"{salt_id(data)}.png"
    mask = np.zeros((101, 101), np.uint8)
    mask[:10], mask[10:20] = 1, 2
    Image.fromarray(mask).save(path)
    expect_error(data, str(path), "0 and one positive value", "[0, 1, 2]")


def rewrite_rle(data: Path, sample_id: str, rle: str) -> None:
    table = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    table.loc[table["id"] == sample_id, "rle_mask"] = rle
    table.to_csv(data / "train.csv", index=False)


def test_malformed_rle(data):
    victim = salt_id(data)
    rewrite_rle(data, victim, "5 3 2")
    expect_error(data, "train.csv", victim, "malformed", "odd number")


def test_rle_disagreeing_with_mask(data):
    victim = salt_id(data)
    rewrite_rle(data, victim, "1 5")
    message = expect_error(data, victim, "disagrees with", f"train/masks/{victim}.png", "trains on the mask PNG")
    assert "pixel" in message


def test_duplicate_ids(data):
    table = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    pd.concat([table, table.iloc[[2]]]).to_csv(data / "train.csv", index=False)
    expect_error(data, "train.csv", "duplicate ids", table["id"].iloc[2])


def test_test_images_not_matching_sample_submission(data):
    sample = pd.read_csv(data / "sample_submission.csv", dtype=str)
    sample.iloc[:-1].to_csv(data / "sample_submission.csv", index=False)
    expect_error(data, sample["id"].iloc[-1], "have no row in", "sample_submission.csv")


def test_sample_id_without_test_image(data):
    sample = pd.read_csv(data / "sample_submission.csv", dtype=str)
    (data / "test/images" / f"{sample['id'].iloc[0]}.png").unlink()
    expect_error(data, sample["id"].iloc[0], "sample_submission.csv", "test/images")


def test_empty_test_folder(data):
    for path in (data / "test/images").glob("*.png"):
        path.unlink()
    expect_error(data, "test/images", "has no PNG images")


def test_missing_depths_is_fine_with_a_warning(data, caplog):
    (data / "depths.csv").unlink()
    with caplog.at_level(logging.WARNING):
        pack_competition(data)
    assert "depths.csv is missing" in caplog.text and "no model" in caplog.text


def test_depths_with_missing_ids_warns(data, caplog):
    depths = pd.read_csv(data / "depths.csv", dtype=str)
    depths.iloc[1:].to_csv(data / "depths.csv", index=False)
    with caplog.at_level(logging.WARNING):
        pack_competition(data)
    assert "has no depth for 1 id(s)" in caplog.text and depths["id"].iloc[0] in caplog.text


def test_missing_data_folder():
    with pytest.raises(DataError, match="does-not-exist"):
        pack_competition("does-not-exist")


def test_bad_data_stops_the_dag_at_pack_and_leaves_no_output(data, tmp_path):
    """Through snakemake: the message reaches the user and no packed file is left behind."""
    (data / "train/masks" / f"{ids(data)[0]}.png").unlink()
    workdir = tmp_path / "run"
    write_config(workdir, data_dir=str(data))
    proc = run_snakemake(workdir, "results/folds.parquet", check=False)
    log = (workdir / "logs/pack_data/pack_data.log").read_text()
    assert proc.returncode != 0 and "have no PNG in" in log and ids(data)[0] in log
    assert not list((workdir / "results").rglob("*.npz"))


# --- config errors: caught by the schema (or common.smk) before any job starts -------------------

CONFIG_CASES = {
    "unknown model": ({"model": "unet_vgg16"}, ["unet_vgg16", "unet_resnet34", "hypercolumn_se_resnext50", "resunet_scse", "resunet_scse_resized"]),
    "unknown loss": ({"loss": "dice"}, ["dice", "lovasz_hinge", "symmetric_lovasz", "bce"]),
    "unknown encoder weights": ({"encoder_weights": "imagnet"}, ["encoder_weights", "imagnet", "none", "imagenet"]),
    "one fold": ({"folds": {"n": 1, "seed": 0}}, ["1 is less than the minimum of 2", "folds"]),
    "size too small": ({"train": {"size": 16, "epochs": 1, "batch_size": 8, "lr": 1e-3, "wd": 0.0}},
                       ["16 is less than the minimum of 32", "train"]),
    "threshold": ({"threshold": 1.5}, ["1.5 is greater than the maximum of 1", "threshold"]),
    "missing data folder": ({"data_dir": "/nonexistent/tgs"}, ["data_dir", "/nonexistent/tgs", "does not exist"]),
    "unknown key": ({"epochs": 3}, ["epochs", "Additional properties"]),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_errors_before_any_job(case, tmp_path):
    overrides, fragments = CONFIG_CASES[case]
    write_config(tmp_path, **overrides)
    proc = run_snakemake(tmp_path, "-n", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for fragment in fragments:
        assert fragment in output, output[-3000:]
    assert not (tmp_path / "results").exists()


def test_user_files_are_not_modified(finished_user_run):
    before, after = finished_user_run
    assert before == after


@pytest.fixture
def finished_user_run(good_data, tmp_path):
    """Run pack on a user's data folder and config; return their checksums before and after."""
    data = Path(shutil.copytree(good_data, tmp_path / "user_data"))
    workdir = tmp_path / "run"
    config = write_config(workdir, data_dir=str(data))

    def snapshot():
        files = sorted(p for p in data.rglob("*") if p.is_file()) + [config]
        return {str(p): (p.stat().st_mtime_ns, p.read_bytes()) for p in files}

    before = snapshot()
    run_snakemake(workdir, "results/folds.parquet")
    assert yaml.safe_load(config.read_text())["data_dir"] == str(data)
    return before, snapshot()
