"""Faults: atomic outputs, NaN losses, killed folds that resume (or start clean), safe loading."""

from __future__ import annotations

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

from conftest import REPO
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
