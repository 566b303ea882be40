"""Faults: atomic outputs, NaN losses, killed folds that resume (or start clean), safe loading."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner

from conftest import DAG_TARGETS, REPO, SNAKEMAKE, TINY_CONFIG, require_marker, write_config
from saltnet.models.modelfile import read_model_file
from saltnet.models.weights import load_state_dict_file
from saltnet.runtime.atomic import atomic_path, write_json
from saltnet.training.callbacks import BestModel, NonFiniteLossError, StopOnNonFiniteLoss


def test_atomic_path_leaves_nothing_when_interrupted(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    write_json(target, {"a": 1})
    assert target.read_text().startswith("{") and [p.name for p in tmp_path.iterdir()] == ["out.json"]


class NanOnBatch:
    """A loss that turns NaN on one chosen training batch (stands in for a diverging run)."""

    def __init__(self, epoch: int, batch: int):
        self.target, self.calls = (epoch, batch), 0
        self.learn = None

    def __call__(self, pred, y):
        loss = torch.nn.functional.mse_loss(pred, y)
        if self.learn.training and (self.learn.epoch, self.learn.iter) == self.target:
            return loss * float("nan")
        return loss


def test_nan_loss_stops_the_fold_and_keeps_the_best_model(tmp_path):
    x = torch.randn(64, 4)
    y = x @ torch.randn(4, 1)
    dls = DataLoaders(DataLoader(list(zip(x[:48], y[:48])), bs=8, shuffle=True),
                      DataLoader(list(zip(x[48:], y[48:])), bs=8))
    loss = NanOnBatch(epoch=1, batch=2)
    best = BestModel("valid_loss", tmp_path / "best.pth")
    best.comp = np.less
    best.reset_on_fit = True
    learn = Learner(dls, torch.nn.Linear(4, 1), loss_func=loss, cbs=[StopOnNonFiniteLoss(fold=3), best])
    loss.learn = learn
    with pytest.raises(NonFiniteLossError) as info:
        with learn.no_logging():
            learn.fit(3, 1e-2)
    assert re.search(r"fold 3: loss became nan at epoch 1, batch 2 \(train\)", str(info.value)), str(info.value)
    saved = torch.load(tmp_path / "best.pth", weights_only=True)
    assert best.best_epoch == 0 and all(torch.isfinite(v).all() for v in saved.values())


TRAIN_SNIPPET = """
import sys
from saltnet.steps import train_step
from saltnet.training.fold import TrainSettings
root, epochs, lr = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
train_step(f"{root}/train.npz", f"{root}/folds.parquet", 0,
           TrainSettings(model="resunet_scse", size=128, epochs=epochs, batch_size=8, lr=lr, wd=1e-7, seed=1,
                         checkpoint_minutes=0), stage="train",
           out_model=f"{root}/out/model.pth", out_history=f"{root}/out/history.parquet",
           out_run=f"{root}/out/run.json", work_dir=f"{root}/work", lock_dir=f"{root}/locks")
"""


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    from saltnet.data.demo import make_demo_data
    from saltnet.steps import folds_step, pack_step

    root = tmp_path_factory.mktemp("resume")
    make_demo_data(root / "data", n_train=64, n_test=2, seed=2)
    pack_step(str(root / "data"), 101, str(root / "train.npz"), str(root / "test.npz"))
    folds_step(str(root / "train.npz"), 2, 0, str(root / "folds.parquet"))
    return root


def train(root: Path, epochs: int, lr: float = 1e-3, kill_after_checkpoint: bool = False) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", TRAIN_SNIPPET, str(root), str(epochs), str(lr)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if kill_after_checkpoint:
        deadline = time.time() + 600
        while not (root / "work/checkpoint.pth").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=900)
    return proc


@pytest.mark.process
def test_killed_fold_resumes_and_matches_an_uninterrupted_run(packed, tmp_path):
    import json
    import shutil

    killed = Path(shutil.copytree(packed, tmp_path / "killed"))
    train(killed, epochs=3, kill_after_checkpoint=True)
    assert not (killed / "out/model.pth").exists(), "a killed fold must not leave finished-looking outputs"
    rerun = train(killed, epochs=3)
    assert rerun.returncode == 0, rerun.stdout.read()[-3000:]
    run = json.loads((killed / "out/run.json").read_text())
    history = pd.read_parquet(killed / "out/history.parquet")
    assert run["resumed_from_epoch"] >= 1 and history["epoch"].tolist() == [0, 1, 2]
    assert not list((killed / "work").iterdir()), "the checkpoint is removed once the fold is done"

    whole = Path(shutil.copytree(packed, tmp_path / "whole"))
    assert train(whole, epochs=3).returncode == 0
    a, b = read_model_file(killed / "out/model.pth"), read_model_file(whole / "out/model.pth")
    assert a.settings_digest == b.settings_digest
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict), \
        "resuming must give the uninterrupted run's weights"


@pytest.mark.process
def test_rerun_with_other_settings_starts_clean(packed, tmp_path):
    import json
    import shutil

    root = Path(shutil.copytree(packed, tmp_path / "changed"))
    train(root, epochs=3, kill_after_checkpoint=True)
    proc = train(root, epochs=2, lr=2e-3)
    assert proc.returncode == 0, proc.stdout.read()[-2000:]
    assert json.loads((root / "out/run.json").read_text())["resumed_from_epoch"] == 0
    assert pd.read_parquet(root / "out/history.parquet")["epoch"].tolist() == [0, 1]


class Evil:
    def __reduce__(self):
        return (print, ("this would run code",))


def test_weights_files_are_loaded_without_unpickling_code(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"conv.weight": Evil()}, handle)
    with pytest.raises(ValueError, match="evil.pth"):
        load_state_dict_file(path)


def test_every_torch_load_in_the_package_is_weights_only():
    calls = []
    for path in (REPO / "src").rglob("*.py"):
        for match in re.finditer(r"torch\.load\(([^)]*)\)", path.read_text()):
            calls.append((path.name, match.group(1)))
    assert calls and all("weights_only=True" in args for _, args in calls), calls


# --- the snakemake process itself killed; a full disk ------------------------------------------------

def job_processes(workdir: Path) -> list[int]:
    """Pids of the processes (other than this one) whose working directory is `workdir`: a run's jobs."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if os.readlink(proc / "cwd") == str(workdir):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


@pytest.mark.slow  # the suite's time on a 2-core AVX2-only CPU: docs/measured.md#demo-and-test-suite-timings
@pytest.mark.snakemake
@pytest.mark.process
@pytest.mark.skipif(not Path("/proc/self").exists(), reason="Linux /proc")
def test_killing_snakemake_itself_then_the_same_command_resumes(tmp_path):
    """SIGKILL to `snakemake` in the middle of training (no handler runs: its jobs are orphaned, its locks
    stay): the jobs stop by themselves, and the same command, run again with no clean-up, resumes the
    folds from their checkpoints and finishes."""
    # enough epochs (tenths of a second each here) that the kill comes in the middle of training
    write_config(tmp_path, train={**TINY_CONFIG["train"], "epochs": 40}, checkpoint_minutes=0)
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2",
           "--set-threads", "train_fold=1", "finetune_fold=1", "predict_fold=1", "--", *DAG_TARGETS]
    require_marker("snakemake")
    # the jobs look for their snakemake every 0.2 s: they stop well before the 40 epochs end
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "SALTNET_WATCH_PERIOD_S": "0.2"})
    checkpoint = tmp_path / "results/checkpoints/train/fold0/checkpoint.pth"
    deadline = time.time() + 600
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert checkpoint.exists(), "no checkpoint was written"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list((tmp_path / ".snakemake/locks").glob("*.lock")), "snakemake left no lock: nothing is tested"
    deadline = time.time() + 60
    while job_processes(tmp_path) and time.time() < deadline:  # the orphaned jobs see it and stop
        time.sleep(0.5)
    assert not job_processes(tmp_path)
    assert not (tmp_path / "results/train/fold0/model.pth").exists()
    assert "snakemake (pid " in (tmp_path / "logs/train_fold/fold0.log").read_text()  # it saw and stopped

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-4000:]
    assert "removed the locks left by snakemake pid" in again.stderr
    run = json.loads((tmp_path / "results/train/fold0/run.json").read_text())
    assert run["resumed_from_epoch"] is not None and run["resumed_from_epoch"] >= 1
    assert (tmp_path / "results/cv_score.json").is_file()


@pytest.mark.snakemake
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_while_predicting_leaves_no_file_and_names_the_folder(finished_run, tmp_path):
    from saltnet.config.settings import TrainSettings
    from saltnet.runtime.atomic import DiskFullError
    from saltnet.steps import predict_step

    full = tmp_path / "predict"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)]).returncode != 0:
        pytest.skip("mount -t tmpfs is not allowed here")
    try:
        results = finished_run / "results"
        settings = TrainSettings(**read_model_file(results / "finetune/fold0/model.pth").settings)
        with pytest.raises(DiskFullError, match=rf"{full}: no space left to write test.npz .* nothing was written"):
            predict_step(str(results / "finetune/fold0/model.pth"), str(results / "packed/train.npz"),
                         str(results / "packed/test.npz"), str(results / "folds.parquet"), 0, str(full / "test.npz"),
                         str(full / "oof.npz"), str(tmp_path / "locks"), 16, True, [], False, expected=settings)
        assert list(full.iterdir()) == []  # no partial file, no temporary one
    finally:
        subprocess.run(["umount", str(full)])


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), RuntimeError("file write failed")])
def test_a_write_that_finds_the_disk_full_names_the_folder(error, tmp_path, monkeypatch):
    """ENOSPC from a writer, or torch.save's RuntimeError where little is free: DiskFullError naming the
    folder, and neither the output nor its temporary file left."""
    import shutil

    from saltnet.runtime.atomic import DiskFullError

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 4096, 4096))
    with pytest.raises(DiskFullError, match=rf"^{tmp_path}: no space left to write out.npz \(0.0 MB free"):
        with atomic_path(tmp_path / "out.npz") as tmp:
            tmp.write_bytes(b"partial")
            raise error
    assert list(tmp_path.iterdir()) == []


def test_a_runtime_error_with_space_left_is_not_a_full_disk(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(tmp_path / "out.npz"):
            raise RuntimeError("boom")
