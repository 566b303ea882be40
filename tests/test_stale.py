"""Nothing stale: what the DAG cannot see by time stamps of folders, it is told (issue: second round)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import STAGE, run_snakemake, write_config
from saltnet.data.demo import make_demo_data
from saltnet.training.fold import TrainSettings


@pytest.fixture
def packed_run(tmp_path):
    """A user data folder and a work dir where pack_data has run."""
    data = tmp_path / "data"
    make_demo_data(data, n_train=8, n_test=2, seed=4)
    work = tmp_path / "work"
    write_config(work, data_dir=str(data))
    run_snakemake(work, "results/packed/train.npz", "results/run_info.json")
    assert "Nothing to be done" in run_snakemake(work, "-n", "results/packed/train.npz").stdout
    return data, work


def jobs_of(work, *args) -> set[str]:
    """Rules of the jobs a dry run would run (from its job-count table)."""
    out = run_snakemake(work, "-n", "results/packed/train.npz", "results/run_info.json", *args).stdout
    return set(re.findall(r"^(\w+)\s+\d+$", out, flags=re.M)) - {"total"}


@pytest.mark.snakemake
def test_an_edited_mask_or_csv_packs_again(packed_run):
    """Snakemake compares an input's content, not only its time stamp: an edit is a rewrite of the bytes."""
    data, work = packed_run
    mask = next((data / "train/masks").glob("*.png"))
    with Image.open(mask) as img:
        img.load()
        img.save(mask, compress_level=1)  # the same pixels, other bytes: a re-saved mask
    assert "pack_data" in jobs_of(work)
    run_snakemake(work, "results/packed/train.npz")
    assert "Nothing to be done" in run_snakemake(work, "-n", "results/packed/train.npz").stdout
    with open(data / "train.csv", "a") as handle:
        handle.write("\n")
    assert "pack_data" in jobs_of(work)


@pytest.mark.snakemake
def test_an_added_image_packs_again(packed_run):
    data, work = packed_run
    image = next((data / "test/images").glob("*.png"))
    (data / "test/images" / "0000000new.png").write_bytes(image.read_bytes())
    assert "pack_data" in jobs_of(work)


@pytest.mark.snakemake
def test_a_changed_config_remakes_run_info(packed_run):
    _, work = packed_run
    assert "run_info" not in jobs_of(work)
    assert "run_info" in jobs_of(work, "--config", "seed=7")


def test_a_checkpoint_follows_the_content_of_its_starting_weights(tmp_path):
    """Retraining stage 1 rewrites model.pth at the same path: the fine-tune must not resume on it."""
    weights = tmp_path / "model.pth"
    torch.save({"w": torch.zeros(2)}, weights)
    before = TrainSettings(**STAGE).fingerprint(0, str(weights), "data")
    torch.save({"w": torch.ones(2)}, weights)
    assert TrainSettings(**STAGE).fingerprint(0, str(weights), "data") != before
    settings = TrainSettings(**STAGE)
    assert settings.fingerprint(0, str(weights), "other data") != settings.fingerprint(0, str(weights), "data")


@pytest.mark.snakemake
def test_gpu_locks_live_outside_the_working_directory(tmp_path):
    """Two experiments in two directories on one GPU box must take their locks in one machine-wide folder."""
    write_config(tmp_path, gpu_slots=1)
    run_snakemake(tmp_path, "results/train/fold0/run.json")
    expected = Path(tempfile.gettempdir()) / f"saltnet-gpu-locks-{os.getuid()}" / "gpu0.lock"
    assert f"holding GPU slot 0 (lock {expected})" in (tmp_path / "logs/train_fold/fold0.log").read_text()


@pytest.mark.snakemake
def test_zero_gpu_slots_is_refused(tmp_path):
    write_config(tmp_path, gpu_slots=0)
    proc = run_snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0 and "0 is less than the minimum of 1" in proc.stdout + proc.stderr
