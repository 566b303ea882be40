"""bf16: auto resolves by the hardware (probe monkeypatched here), and the choice reaches prediction."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from saltnet.config.settings import TrainSettings
from saltnet.inference.predict import predict_probs
from saltnet.models import build_model
from saltnet.models.modelfile import read_model_file, save_model_file
from saltnet.runtime import precision
from saltnet.runtime.atomic import write_npz
from saltnet.runtime.precision import resolve_bf16
from saltnet.steps import folds_step, predict_step

CPU = torch.device("cpu")


def fake_cpu(monkeypatch, native: bool, speedup: float = 1.0) -> None:
    info = {"cpu_model": "Test CPU", "cpu_capability": "AVX512" if native else "AVX2", "native_bf16": native,
            "threads": 2}
    monkeypatch.setattr(precision, "cpu_info", lambda: info)
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda: speedup)


def test_auto_is_off_on_a_cpu_without_native_bf16(monkeypatch):
    fake_cpu(monkeypatch, native=False, speedup=5.0)  # the probe is not even asked
    choice = resolve_bf16("auto", CPU)
    assert not choice.bf16 and "no native bf16" in choice.reason and "AVX2" in choice.reason


@pytest.mark.parametrize("speedup, expected", [(2.0, True), (0.09, False)])
def test_auto_follows_the_probe_on_a_cpu_with_native_bf16(monkeypatch, speedup, expected):
    """0.09: a CPU with AMX told to act as AVX2-only (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2)."""
    fake_cpu(monkeypatch, native=True, speedup=speedup)
    choice = resolve_bf16("auto", CPU)
    assert choice.bf16 is expected and f"{speedup:.2f}x" in choice.reason


def test_true_and_false_force_it_and_nonsense_is_refused(monkeypatch):
    fake_cpu(monkeypatch, native=False)
    assert resolve_bf16(True, CPU).bf16 and not resolve_bf16(False, CPU).bf16
    with pytest.raises(ValueError, match="bf16"):
        resolve_bf16("yes", CPU)


def test_the_real_probe_measures_this_cpu():
    speedup = precision.cpu_bf16_speedup.__wrapped__(steps=1)
    assert speedup > 0 and np.isfinite(speedup)


def test_the_probe_times_one_thread_and_gives_the_callers_threads_back(monkeypatch, capsys):
    """On two threads a busy CPU made bf16 look slower than fp32 (docs/speed.md): the probe runs on one."""
    seen = []
    monkeypatch.setattr(precision, "_probe_speedup", lambda steps: seen.append(torch.get_num_threads()) or 2.0)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert precision.cpu_bf16_speedup.__wrapped__() == 2.0
        assert seen == [1] and torch.get_num_threads() == 2
        precision.main(["--threads", "1", "2", "--repeats", "2"])
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 1, 1, 2, 2]
    out = capsys.readouterr().out
    assert "1 thread(s)" in out and "2 thread(s)" in out and "bf16 chosen 2 of 2 times" in out


@pytest.fixture(scope="module")
def tiny_fold(tmp_path_factory):
    """Packed arrays, a fold table and weights of resunet_scse for a 6-image, 2-fold set."""
    root = tmp_path_factory.mktemp("precision")
    rng = np.random.default_rng(0)
    ids = np.array([f"img{i}" for i in range(6)])
    masks = (rng.random((6, 101, 101)) > 0.5).astype(np.uint8)
    images = rng.integers(0, 256, (6, 101, 101), dtype=np.uint8)
    write_npz(root / "train.npz", ids=ids, images=images, masks=masks)
    write_npz(root / "test.npz", ids=ids[:2], images=images[:2])
    folds_step(str(root / "train.npz"), 2, 0, str(root / "folds.parquet"))
    torch.manual_seed(0)
    settings = TrainSettings(model="resunet_scse", size=128, epochs=1, batch_size=8, lr=1e-3, wd=1e-7)
    save_model_file(root / "model.pth", build_model("resunet_scse", "none", 128).state_dict(), settings, "finetune")
    return root


@pytest.mark.parametrize("native, speedup, expected", [(False, 1.0, False), (True, 3.0, True)])
def test_the_resolved_value_reaches_prediction(monkeypatch, caplog, tiny_fold, native, speedup, expected):
    """predict_step's probabilities equal predict_probs' at the precision auto resolved to, not the other."""
    fake_cpu(monkeypatch, native=native, speedup=speedup)
    out = tiny_fold / f"test-{native}.npz"
    with caplog.at_level(logging.INFO, logger="saltnet"):
        predict_step(str(tiny_fold / "model.pth"), str(tiny_fold / "train.npz"),
                     str(tiny_fold / "test.npz"), str(tiny_fold / "folds.parquet"), 0, str(out),
                     str(tiny_fold / f"oof-{native}.npz"), str(tiny_fold / "locks"), batch_size=32, tta=True,
                     shifts=[], bf16="auto", gpu_slots=0)
    assert f"precision {'bf16' if expected else 'fp32'}" in caplog.text
    model = read_model_file(tiny_fold / "model.pth").build()
    images = np.load(tiny_fold / "test.npz")["images"]
    same = predict_probs(model, images, 101, CPU, bf16=expected)
    other = predict_probs(model, images, 101, CPU, bf16=not expected)
    got = np.load(out)["probs"]
    assert np.array_equal(got, same) and not np.array_equal(got, other)
