"""The DAG on a slice of the real competition data (../shared/data/tgs), unchanged but for data_dir."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import DAG_TARGETS, run_snakemake, write_config
from saltnet.data.rle import rle_decode


def make_slice(source: Path, dest: Path, n_train: int, n_test: int) -> Path:
    """Copy the first n_train labelled and n_test test images, with their CSV rows, into dest."""
    train = pd.read_csv(source / "train.csv", dtype=str, keep_default_na=False)
    sample = pd.read_csv(source / "sample_submission.csv", dtype=str, keep_default_na=False)
    # a slice with both empty and salty masks, as in the full set
    train = pd.concat([train[train.rle_mask == ""].head(n_train // 3), train[train.rle_mask != ""]]).head(n_train)
    sample = sample.head(n_test)
    for sub in ("train/images", "train/masks", "test/images"):
        (dest / sub).mkdir(parents=True)
    for sample_id in train["id"]:
        for sub in ("train/images", "train/masks"):
            shutil.copy(source / sub / f"{sample_id}.png", dest / sub / f"{sample_id}.png")
    for sample_id in sample["id"]:
        shutil.copy(source / "test/images" / f"{sample_id}.png", dest / "test/images" / f"{sample_id}.png")
    train.to_csv(dest / "train.csv", index=False)
    sample.to_csv(dest / "sample_submission.csv", index=False)
    depths = pd.read_csv(source / "depths.csv", dtype=str)
    depths[depths["id"].isin(set(train["id"]) | set(sample["id"]))].to_csv(dest / "depths.csv", index=False)
    return dest


@pytest.mark.snakemake
def test_dag_on_a_real_data_slice(real_data, tmp_path):
    data = make_slice(real_data, tmp_path / "tgs", n_train=30, n_test=10)
    workdir = tmp_path / "run"
    write_config(workdir, data_dir=str(data))
    run_snakemake(workdir, *DAG_TARGETS)
    sub = pd.read_csv(workdir / "results/submission.csv", dtype=str, keep_default_na=False)
    assert sub["id"].tolist() == pd.read_csv(data / "sample_submission.csv", dtype=str)["id"].tolist()
    assert all(rle_decode(rle).shape == (101, 101) for rle in sub["rle_mask"])
    cv = json.loads((workdir / "results/cv_score.json").read_text())
    assert cv["n_images"] == 30 and set(cv["per_fold"]) == {"0", "1"}
    assert not (data / "results").exists() and sorted(p.name for p in data.iterdir()) == [
        "depths.csv", "sample_submission.csv", "test", "train", "train.csv"]
