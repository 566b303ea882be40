"""Each bad input gets a clear error naming the file or key; nothing half-written is left behind."""

from __future__ import annotations

import gzip
import io
import logging
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import TINY_CONFIG, run_snakemake, write_config
from saltnet.data.demo import make_demo_data
from saltnet.data.pack import DataError, pack_competition
from saltnet.runtime.atomic import write_json, write_npz, write_parquet, write_text
from test_pngio import permuted_palette, png_bytes


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


@pytest.mark.snakemake
def test_bad_data_stops_the_dag_at_pack_and_leaves_no_output(data, tmp_path):
    """Through snakemake: the message reaches the user's terminal as one line (the traceback goes to the
    job's log only) and no packed file is left behind."""
    (data / "train/masks" / f"{ids(data)[0]}.png").unlink()
    workdir = tmp_path / "run"
    write_config(workdir, data_dir=str(data))
    proc = run_snakemake(workdir, "results/folds.parquet", check=False)
    log = (workdir / "logs/pack_data/pack_data.log").read_text()
    assert proc.returncode != 0 and "have no PNG in" in log and ids(data)[0] in log and "Traceback" in log
    terminal = proc.stdout + proc.stderr
    errors = [line for line in terminal.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "have no PNG in" in errors[0] and "logs/pack_data/pack_data.log" in errors[0]
    assert "Traceback" not in terminal and 'File "' not in terminal
    assert not list((workdir / "results").rglob("*.npz"))


# --- every image read exactly, or refused (the same reader for train images, masks and test images) ---

def test_exact_forms_pack_to_the_same_arrays(good_data, data):
    """PNG forms that hold exact gray (palette, 16-bit gray, RGBA/gray+alpha opaque, 1-bit mask, ...)
    pack to the very arrays of the competition's own forms."""
    expected_train, expected_test = pack_competition(good_data)
    train_ids, test_id = ids(data), ids(data, "sample_submission.csv")[0]
    opaque = np.full((101, 101), 255, np.uint8)
    image_forms = [
        permuted_palette,  # palette: read as its gray values, not its indices
        lambda g: Image.fromarray(g.astype(np.uint16) * 257),  # 16-bit gray, multiples of 257
        lambda g: Image.fromarray(np.dstack([g, g, g, opaque])),  # RGBA, R=G=B, opaque
        lambda g: Image.fromarray(np.dstack([g, opaque])),  # gray+alpha, opaque
        Image.fromarray,  # 8-bit gray
    ]
    for sample_id, form in zip(train_ids, image_forms):
        path = data / "train/images" / f"{sample_id}.png"
        form(first_gray(path)).save(path)
    test_path = data / "test/images" / f"{test_id}.png"
    permuted_palette(first_gray(test_path)).save(test_path)
    mask_forms = [
        Image.fromarray,  # 1-bit
        lambda m: permuted_palette(m.astype(np.uint8) * 255),  # gray palette
        lambda m: Image.fromarray(rgb(m.astype(np.uint8) * 255)),  # 8-bit RGB, R=G=B
    ]
    salted = [i for i in train_ids if np.asarray(Image.open(data / "train/masks" / f"{i}.png")).any()]
    for sample_id, form in zip(salted, mask_forms):
        path = data / "train/masks" / f"{sample_id}.png"
        form(np.asarray(Image.open(path)) > 0).save(path)
    train, test = pack_competition(data)
    assert np.array_equal(train.images, expected_train.images) and np.array_equal(train.masks, expected_train.masks)
    assert np.array_equal(test.images, expected_test.images)


def jpeg_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def rgb(gray: np.ndarray, differ: int = 0) -> np.ndarray:
    """(H, W) -> (H, W, 3) with R=G=B except in the first `differ` pixels, whose blue is off by one."""
    out = np.repeat(gray[..., None], 3, axis=2)
    out.reshape(-1, 3)[:differ, 2] ^= 1
    return out


def first_gray(path: Path) -> np.ndarray:
    arr = np.asarray(Image.open(path))
    return arr[..., 0] if arr.ndim == 3 else arr


def rewrite_image(make):
    """A writer for IMAGE_CASES: replace the PNG at `path` by make(its gray values) (an Image or bytes)."""
    def write(path: Path) -> None:
        out = make(first_gray(path))
        path.write_bytes(out) if isinstance(out, bytes) else out.save(path)
    return write


IMAGE_CASES = {  # name: (folder, write(path) -> None, fragments of the message)
    "JPEG renamed .png": ("train/images", rewrite_image(jpeg_bytes), ["image is a JPEG file, not a PNG"]),
    "RGB whose channels differ": ("train/images", rewrite_image(lambda g: Image.fromarray(rgb(g, 7))),
                                  ["image is an 8-bit RGB PNG", "channels differ in 7 pixel(s)"]),
    "16-bit RGB (PIL keeps the high byte)": (
        "train/images", rewrite_image(lambda g: png_bytes(rgb(g).astype(np.uint16) * 257, 16, 2)),
        ["image is a 16-bit RGB PNG", "cannot be read exactly"]),
    "palette with colours": (
        "train/images", rewrite_image(lambda g: Image.fromarray(rgb(g, 50)).convert("P", palette=Image.ADAPTIVE)),
        ["palette PNG whose colours in use are not gray"]),
    "RGBA with transparent pixels": (
        "train/images", rewrite_image(lambda g: Image.fromarray(np.dstack([rgb(g), np.zeros_like(g)]))),
        ["image is an 8-bit RGBA PNG with 10201 transparent"]),
    "16-bit gray image without an 8-bit form": (
        "train/images", rewrite_image(lambda g: Image.fromarray(g.astype(np.uint16) * 256 + 1)),
        ["16-bit gray", "not a multiple of 257"]),
    "test image whose channels differ": ("test/images", rewrite_image(lambda g: Image.fromarray(rgb(g, 3))),
                                         ["image is an 8-bit RGB PNG", "channels differ in 3 pixel(s)"]),
    "test image that is a JPEG": ("test/images", rewrite_image(jpeg_bytes), ["image is a JPEG file, not a PNG"]),
    "mask that is a 16-bit RGB PNG": (
        "train/masks", rewrite_image(lambda m: png_bytes(rgb((m > 0).astype(np.uint16) * 65535), 16, 2)),
        ["mask is a 16-bit RGB PNG"]),
}


@pytest.mark.parametrize("case", sorted(IMAGE_CASES))
def test_image_not_exact_gray_is_refused(case, data):
    folder, write, fragments = IMAGE_CASES[case]
    table = "sample_submission.csv" if folder.startswith("test") else "train.csv"
    victim = salt_id(data) if folder == "train/masks" else ids(data, table)[1]
    path = data / folder / f"{victim}.png"
    write(path)
    expect_error(data, f"{path}: ", *fragments)


def test_mask_with_salt_in_another_channel_is_a_mask_problem(data):
    """The red channel alone would read as an empty mask and blame train.csv's RLE; it is the mask."""
    victim = salt_id(data)
    path = data / "train/masks" / f"{victim}.png"
    coloured = np.zeros((101, 101, 3), np.uint8)
    coloured[..., 1] = (np.asarray(Image.open(path)) > 0) * 255
    Image.fromarray(coloured).save(path)
    message = expect_error(data, f"{path}: mask is an 8-bit RGB PNG and its channels differ")
    assert "train.csv" not in message and "disagrees" not in message


# --- no raw tracebacks for bad files ----------------------------------------------------------------

CSV_CASES = {  # name: (rewrite(bytes, first id) -> bytes, fragments of the message)
    "empty": (lambda raw, i: b"", ["is empty", "header line"]),
    "only blank lines": (lambda raw, i: b"\n\n\n", ["is empty"]),
    "UTF-16": (lambda raw, i: raw.decode().encode("utf-16"), ["is UTF-16 text", "UTF-8"]),
    "UTF-16 without a byte-order mark": (lambda raw, i: raw.decode().encode("utf-16-le"), ["NUL bytes", "UTF-8"]),
    "Latin-1": (lambda raw, i: raw.decode().replace(i, i + "\u00e9", 1).encode("latin-1"),
                ["is not UTF-8 text", "0xe9"]),
    "gzip-compressed": (lambda raw, i: gzip.compress(raw), ["is gzip-compressed, not CSV text", "decompress"]),
    "zip (or Excel workbook)": (lambda raw, i: b"PK\x03\x04" + raw, ["zip archive"]),
    "unterminated quote": (lambda raw, i: raw + b'"abc,1 1\n', ["cannot be parsed as CSV", "line"]),
    "a row with an extra field": (lambda raw, i: raw.replace(i.encode() + b",", i.encode() + b",1 1,", 1),
                                  ["line(s) have another number of fields", "line 2 has 3"]),
    "header only": (lambda raw, i: raw.splitlines(keepends=True)[0], ["has a header but no rows"]),
    "semicolon-separated": (lambda raw, i: raw.replace(b",", b";"), ["missing column", "semicolons"]),
}


@pytest.mark.parametrize("table", ["train.csv", "sample_submission.csv"])
@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_unreadable_csv(case, table, data):
    rewrite, fragments = CSV_CASES[case]
    path = data / table
    path.write_bytes(rewrite(path.read_bytes(), ids(data, table)[0]))
    expect_error(data, str(path), *fragments)


def test_csv_as_excel_writes_it_is_read(data):
    """UTF-8 with a byte-order mark, CRLF line ends, quoted fields: still the same table."""
    expected = pack_competition(data)[0]
    for table in ("train.csv", "sample_submission.csv"):
        frame = pd.read_csv(data / table, dtype=str, keep_default_na=False)
        frame.to_csv(data / table, index=False, encoding="utf-8-sig", lineterminator="\r\n", quoting=1)
    train = pack_competition(data)[0]
    assert list(train.ids) == list(expected.ids) and np.array_equal(train.masks, expected.masks)


def test_unreadable_depths_is_only_a_warning(data, caplog):
    (data / "depths.csv").write_bytes(gzip.compress((data / "depths.csv").read_bytes()))
    with caplog.at_level(logging.WARNING):
        pack_competition(data)
    assert "depths.csv is gzip-compressed" in caplog.text and "no model" in caplog.text


def test_rle_number_too_large_for_an_integer(data):
    victim = salt_id(data)
    rewrite_rle(data, victim, "1 99999999999999999999999999")
    expect_error(data, "train.csv", repr(victim), "malformed",
                 "99999999999999999999999999 is larger than the 10201 pixels")


@pytest.mark.parametrize("what", ["train/images", "train/masks", "test/images"])
def test_broken_symbolic_link(what, data):
    table = "sample_submission.csv" if what.startswith("test") else "train.csv"
    path = data / what / f"{ids(data, table)[0]}.png"
    path.unlink()
    path.symlink_to(data / "elsewhere/gone.png")
    expect_error(data, "broken symbolic link", str(data / what), path.name, "elsewhere/gone.png")


def test_broken_symbolic_link_for_a_table(data):
    (data / "train.csv").unlink()
    (data / "train.csv").symlink_to("/nonexistent/train.csv")
    expect_error(data, str(data / "train.csv"), "broken symbolic link", "/nonexistent/train.csv")


@pytest.mark.parametrize("name, fragments", [
    ("{id}.PNG", ["'{id}.PNG'", "rename it to {id}.png", "lower-case .png"]),
    ("{id}.Png", ["'{id}.Png'", "rename it to {id}.png"]),
    ("{id}.jpg", ["'{id}.jpg'", "not a .png file"]),
    ("{id}.tif", ["'{id}.tif'", "not a .png file"]),
])
def test_image_not_named_id_png(name, fragments, data):
    victim = ids(data)[2]
    path = data / "train/images" / f"{victim}.png"
    path.rename(path.with_name(name.format(id=victim)))
    expect_error(data, str(data / "train/images"), "not named <id>.png", *[f.format(id=victim) for f in fragments])


@pytest.mark.parametrize("table", ["train.csv", "sample_submission.csv"])
@pytest.mark.parametrize("bad, why", [
    ("{id} ", "leading or trailing whitespace"),
    (" {id}", "leading or trailing whitespace"),
    ("{id}\u200b", "invisible or control character"),
    ("{id}.png", "without the extension"),
    ("sub/{id}", "path separator"),
])
def test_id_that_is_not_a_file_name(bad, why, table, data):
    frame = pd.read_csv(data / table, dtype=str, keep_default_na=False)
    shown = bad.format(id=frame["id"].iloc[0])
    frame.loc[0, "id"] = shown
    frame.to_csv(data / table, index=False)
    expect_error(data, str(data / table), repr(shown), why)


def test_test_id_that_is_also_a_training_id(data):
    leaked = ids(data)[0]
    shutil.copy(data / "train/images" / f"{leaked}.png", data / "test/images" / f"{leaked}.png")
    sample = pd.read_csv(data / "sample_submission.csv", dtype=str, keep_default_na=False)
    sample = pd.concat([sample, pd.DataFrame({"id": [leaked], "rle_mask": ["1 1"]})])
    sample.to_csv(data / "sample_submission.csv", index=False)
    expect_error(data, repr(leaked), "train.csv", "sample_submission.csv", "leaks")


# --- config errors: caught by the schema (or common.smk) before any job starts -------------------

CONFIG_CASES = {
    "unknown model": ({"model": "unet_vgg16"},
                      ["unet_vgg16", "unet_resnet34", "hypercolumn_se_resnext50", "resunet_scse", "resunet_scse_ds"]),
    "unknown loss": ({"loss": "dice"}, ["dice", "lovasz_hinge", "symmetric_lovasz", "bce"]),
    "unknown encoder weights": ({"encoder_weights": "imagnet"}, ["encoder_weights", "imagnet", "none", "imagenet"]),
    "one fold": ({"folds": {"n": 1, "seed": 0}}, ["1 is less than the minimum of 2", "folds"]),
    "size too small": ({"train": {"size": 16, "epochs": 1, "batch_size": 8, "lr": 1e-3, "wd": 0.0}},
                       ["16 is less than the minimum of 32", "train"]),
    "threshold": ({"threshold": 1.5}, ["1.5 is greater than the maximum of 1", "threshold"]),
    "missing data folder": ({"data_dir": "/nonexistent/tgs"}, ["data_dir", "/nonexistent/tgs", "does not exist"]),
    "unknown key": ({"epochs": 3}, ["config key epochs: unknown (known keys:"]),
    "negative fold seed": ({"folds": {"n": 2, "seed": -1}},
                           ["config key folds.seed: -1 is less than the minimum of 0"]),
    "negative training seed": ({"seed": -3}, ["config key seed: -3 is less than the minimum of 0"]),
    "batch size 1 with BatchNorm": ({"finetune": {**TINY_CONFIG["finetune"], "batch_size": 1}},
                                    ["config key finetune.batch_size: 1 is less than the minimum of 2", "BatchNorm"]),
    "TTA shift too large": ({"predict": {"batch_size": 16, "tta": True, "shifts": [[0, 8], [0, 80]]}},
                            ["config key predict.shifts.1.1: 80 is greater than the maximum of 50"]),
    "TTA shift not a pair": ({"predict": {"batch_size": 16, "tta": True, "shifts": [[8]]}},
                             ["config key predict.shifts.0: [8] is too short"]),
    "no space after a colon": ({"folds": {"n:3": None}}, ["YAML needs a space after each colon: write {n: 20}"]),
    "more folds than images": ({"folds": {"n": 30, "seed": 0}},
                               ["config key folds.n: 30 folds need at least as many training images",
                                "demo.n_train gives 24", "set folds.n to at most 24"]),
    "a proxy fold outside the split": ({"folds": {"n": 2, "run": [2]}},
                                       ["config key folds.run: fold 2 is not one of the folds.n = 2 folds"]),
}


@pytest.mark.snakemake
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
    # On one screen: the message alone, no traceback, no schema dump.
    assert len(output.strip().splitlines()) <= 10 and "Traceback" not in output and 'File "' not in output, output


def snakemake_output(workdir: Path, env: dict | None = None) -> tuple[int, str]:
    proc = run_snakemake(workdir, "-n", check=False, env=env)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.snakemake
@pytest.mark.parametrize("key, env", [("slurm_account", "SALTNET_SLURM_ACCOUNT"),
                                      ("slurm_partition", "SALTNET_SLURM_PARTITION")])
def test_a_profile_placeholder_stops_before_any_job(key, env, tmp_path):
    """A SLURM profile copied with its EDIT_ME placeholder left in: nothing runs (or is submitted), and the
    message says what to set and where, on one screen."""
    write_config(tmp_path)
    proc = run_snakemake(tmp_path, "--default-resources", f"{key}=EDIT_ME_x", "mem_mb=1000", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and f"resource {key}: still the placeholder EDIT_ME_x" in output, output[-3000:]
    assert f"export {env}=" in output and len(output.strip().splitlines()) <= 10 and "Traceback" not in output
    assert not (tmp_path / "results").exists()


@pytest.mark.snakemake
def test_relative_data_dir_is_resolved_against_the_working_directory(tmp_path):
    """With snakemake --directory, a relative data_dir is looked for there: the message says where."""
    write_config(tmp_path, data_dir="my/tgs")
    code, output = snakemake_output(tmp_path)
    assert code != 0 and "config key data_dir: folder my/tgs does not exist" in output, output[-3000:]
    assert f"looked for {tmp_path / 'my/tgs'}" in output and f"working directory {tmp_path}" in output
    assert not (tmp_path / "results").exists()


@pytest.mark.snakemake
def test_home_in_data_dir_is_expanded(good_data, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(good_data, home / "tgs")
    write_config(tmp_path / "run", data_dir="~/tgs")
    code, output = snakemake_output(tmp_path / "run", env={"HOME": str(home)})
    assert code == 0, output[-3000:]
    write_config(tmp_path / "run", data_dir="~/missing")
    code, output = snakemake_output(tmp_path / "run", env={"HOME": str(home)})
    assert code != 0 and f"folder {home / 'missing'} (from '~/missing') does not exist" in output, output[-3000:]


@pytest.mark.snakemake
def test_data_dir_that_is_a_file(tmp_path):
    (tmp_path / "data.zip").write_bytes(b"PK\x03\x04")
    write_config(tmp_path / "run", data_dir=str(tmp_path / "data.zip"))
    code, output = snakemake_output(tmp_path / "run")
    assert code != 0, output[-3000:]
    assert f"config key data_dir: folder {tmp_path / 'data.zip'} is a file, neither a folder nor a Kaggle zip" in output
    assert len(output.strip().splitlines()) <= 10 and "Traceback" not in output, output


@pytest.mark.snakemake
@pytest.mark.parametrize("key, value, fragment", [
    ("threshold", 0, "almost every pixel is salt"),
    ("threshold", 1, "no pixel is salt, so every mask is empty"),
    ("min_area", 20000, "more than the 10201 pixels of an image"),
    ("min_peak", 1, "empties every mask whose most confident pixel is below probability 1"),
])
def test_odd_value_warns_but_runs(key, value, fragment, tmp_path):
    write_config(tmp_path, **{key: value})
    code, output = snakemake_output(tmp_path)
    assert code == 0 and f"Warning: config key {key}: {value}" in output and fragment in output, output[-3000:]


# --- outputs a team can share ------------------------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_outputs_respect_the_umask(umask, tmp_path):
    """Atomic writes start from mkstemp's 0600; the finished file has the mode open() would give it."""
    old = os.umask(umask)
    try:
        write_text(tmp_path / "a.txt", "x\n")
        write_json(tmp_path / "b.json", {"a": 1})
        write_npz(tmp_path / "c.npz", x=np.zeros(3))
        write_parquet(tmp_path / "d.parquet", pd.DataFrame({"a": [1]}))
    finally:
        os.umask(old)
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in tmp_path.iterdir()}
    assert modes == {name: oct(0o666 & ~umask) for name in ("a.txt", "b.json", "c.npz", "d.parquet")}


@pytest.mark.snakemake
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
