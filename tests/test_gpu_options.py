"""The GPU-facing options, checked on the CPU: checkpoint interval, determinism, torch.compile, gpu-check."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import torch

from conftest import REPO, STAGE
from saltnet.runtime.determinism import resolve_deterministic, seed_everything
from saltnet.training.fold import TrainSettings, train_fold


@pytest.fixture(scope="module")
def tiny_fold(tmp_path_factory):
    from saltnet.data.demo import make_demo_data
    from saltnet.data.folds import split_folds
    from saltnet.data.pack import pack_competition

    root = tmp_path_factory.mktemp("fold")
    make_demo_data(root / "data", n_train=32, n_test=1, seed=3)
    data, _ = pack_competition(root / "data")
    return data, split_folds(data.ids, data.masks, 2, 0)


def _checkpoint_epochs(caplog, data, folds, work_dir, **settings) -> list[int]:
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="saltnet.training.callbacks"):
        train_fold(data, folds, 0, TrainSettings(**{**STAGE, "epochs": 3, **settings}), work_dir, torch.device("cpu"))
    return [int(r.getMessage().split()[3]) for r in caplog.records if r.getMessage().startswith("checkpoint after")]


def test_checkpoints_follow_the_interval_and_the_last_epoch_always_gets_one(tiny_fold, tmp_path, caplog):
    data, folds = tiny_fold
    assert _checkpoint_epochs(caplog, data, folds, tmp_path / "a", checkpoint_minutes=0) == [1, 2, 3]
    assert _checkpoint_epochs(caplog, data, folds, tmp_path / "b", checkpoint_minutes=60) == [3]


def test_the_checkpoint_interval_is_not_part_of_what_a_checkpoint_resumes():
    """Changing when checkpoints are written must not throw a fold's checkpoint away; other keys must."""
    base = TrainSettings(**STAGE).fingerprint(0, None, "data")
    assert TrainSettings(**STAGE, checkpoint_minutes=1).fingerprint(0, None, "data") == base
    assert TrainSettings(**STAGE, compile=True).fingerprint(0, None, "data") != base
    assert TrainSettings(**STAGE, deterministic=False).fingerprint(0, None, "data") != base


def test_deterministic_auto_is_on_for_the_cpu_and_off_for_cuda():
    assert resolve_deterministic("auto", torch.device("cpu")).on
    assert not resolve_deterministic("auto", torch.device("cuda", 0)).on
    assert resolve_deterministic(True, torch.device("cuda", 0)).on
    assert not resolve_deterministic(False, torch.device("cpu")).on
    with pytest.raises(ValueError, match="config key deterministic"):
        resolve_deterministic("yes", torch.device("cpu"))


def test_seed_everything_sets_the_cudnn_autotuner_by_determinism():
    saved = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    try:
        seed_everything(1, deterministic=False)
        assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
        first = torch.rand(3)
        seed_everything(1, deterministic=True)
        assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
        assert torch.equal(torch.rand(3), first), "both seed torch the same way"
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved


def test_compile_keeps_the_state_dict_keys_that_prediction_loads(tiny_fold, tmp_path, monkeypatch):
    """compile: true compiles in place (model.compile), so the saved weights load into a plain model.
    TorchDynamo is switched off here (compiling takes minutes on 2 cores; the slow test compiles for real)."""
    import torch._dynamo

    from saltnet.models import build_model

    monkeypatch.setattr(torch._dynamo.config, "disable", True)
    data, folds = tiny_fold
    settings = TrainSettings(model="resunet_scse", size=32, epochs=1, batch_size=8, lr=1e-3, wd=1e-7, compile=True)
    result = train_fold(data, folds, 0, settings, tmp_path, torch.device("cpu"))
    build_model("resunet_scse", "none", 32).load_state_dict(result.state_dict)  # raises on other keys


@pytest.mark.slow
def test_compile_really_compiles_and_trains(tiny_fold, tmp_path):
    data, folds = tiny_fold
    settings = TrainSettings(model="resunet_scse", size=32, epochs=1, batch_size=8, lr=1e-3, wd=1e-7, compile=True)
    result = train_fold(data, folds, 0, settings, tmp_path, torch.device("cpu"))
    assert all(torch.isfinite(v).all() for v in result.state_dict.values() if v.is_floating_point())


@pytest.mark.process
def test_gpu_check_runs_its_whole_code_path_at_tiny_sizes(tmp_path):
    """`make gpu-check`'s module on the CPU: benchmark rows, both stages, prediction, the JSON report."""
    import json

    out = tmp_path / "gpu-check.json"
    # The small model: the preset's SE-ResNeXt50 takes a minute and a half here for the same code path.
    cmd = [sys.executable, "-m", "saltnet.performance.gpucheck", "--tiny", "--model", "resunet_scse", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [s["stage"] for s in report["stages"]] == ["train", "finetune"]
    assert [s["size"] for s in report["stages"]] == [32, 48]
    for stage in report["stages"]:
        assert stage["img_per_s"] > 0 and 0 < stage["outside_fwd_bwd"] < 1 and len(stage["epoch_s"]) == 1
    assert {row["model"] for row in report["bench"]} == {"resunet_scse"}
    assert report["preset_cost"]["gpu_hours"] > 0 and set(report["preset_cost"]["wall_hours"]) == {"1", "2", "4", "8"}
    assert "gpu-check passed" in proc.stdout and "outside forward/backward" in proc.stdout


def test_gpu_check_refuses_a_prediction_of_the_wrong_shape_or_range():
    import numpy as np

    from saltnet.performance.gpucheck import check_prediction

    check_prediction(np.full((2, 101, 101), 0.5, np.float16), 2, 101)
    with pytest.raises(ValueError, match="shape"):
        check_prediction(np.zeros((2, 128, 128), np.float16), 2, 101)
    with pytest.raises(ValueError, match="outside"):
        check_prediction(np.full((2, 101, 101), np.nan, np.float16), 2, 101)
