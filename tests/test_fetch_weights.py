"""ImageNet encoder weights: fetched once by a local rule, then read by the training jobs from a file."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from conftest import run_snakemake, write_config
from saltnet.models.weights import WeightsDownloadError, fetch_imagenet_weights


def _online(host: str = "download.pytorch.org") -> bool:
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


offline_only = pytest.mark.skipif(_online(), reason="download.pytorch.org is reachable: no offline error to show")


@pytest.fixture
def empty_torch_cache(tmp_path, monkeypatch) -> Path:
    """No cached downloads, so fetching really goes to the network (subprocesses inherit it too)."""
    cache = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(cache))
    return cache


@offline_only
def test_offline_fetch_names_the_alternatives(tmp_path, empty_torch_cache):
    out = tmp_path / "weights" / "resnet34.pth"
    with pytest.raises(WeightsDownloadError) as err:
        fetch_imagenet_weights("resnet34", out)
    message = str(err.value)
    assert "encoder_weights: none" in message and "encoder_weights: path/to/resnet34.pth" in message
    assert not out.exists() and not list(out.parent.glob("*")), "no partial weights file may be left"


def test_unknown_encoder_lists_the_choices(tmp_path):
    with pytest.raises(KeyError, match="resnet34"):
        fetch_imagenet_weights("vgg16", tmp_path / "vgg16.pth")


@pytest.mark.snakemake
@offline_only
def test_offline_fetch_rule_fails_clearly(tmp_path, empty_torch_cache):
    write_config(tmp_path, model="unet_resnet34", encoder_weights="imagenet")
    proc = run_snakemake(tmp_path, "results/train/fold0/model.pth", check=False)
    assert proc.returncode != 0
    assert "rule fetch_encoder_weights" in proc.stdout + proc.stderr
    assert "WeightsDownloadError" in proc.stderr and "encoder_weights: none" in proc.stderr
    assert not (tmp_path / "resources/weights/resnet34.pth").exists()
    assert not (tmp_path / "results/train/fold0").exists(), "training must not start without its weights"


@pytest.mark.snakemake
@pytest.mark.parametrize("model, encoder", [("unet_resnet34", "resnet34"),
                                            ("hypercolumn_se_resnext50", "se_resnext50_32x4d")])
def test_imagenet_plans_one_local_fetch_that_training_reads(tmp_path, model, encoder):
    write_config(tmp_path, model=model, encoder_weights="imagenet")
    proc = run_snakemake(tmp_path, "-n", "results/train/fold0/model.pth", "results/train/fold1/model.pth")
    weights = f"resources/weights/{encoder}.pth"
    assert f"rule fetch_encoder_weights:\n    output: {weights}" in proc.stdout
    assert proc.stdout.count("rule fetch_encoder_weights:") == 1, "one download for all folds"
    prefix = "input: results/packed/train.npz, results/folds"
    train_inputs = [line for line in proc.stdout.splitlines() if line.strip().startswith(prefix)]
    assert len(train_inputs) == 2 and all(weights in line for line in train_inputs), train_inputs


@pytest.mark.snakemake
@pytest.mark.parametrize("setting", ["path", "imagenet"])
def test_training_loads_the_weights_file_not_imagenet(tmp_path, setting):
    """A file that is not a state dict makes training fail naming that file: proof the path was passed."""
    if setting == "path":
        weights = tmp_path / "my weights" / "encoder.pth"
        config_value = str(weights)
    else:  # already fetched: the rule does not run again, training reads the file
        weights = tmp_path / "resources/weights/resnet34.pth"
        config_value = "imagenet"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"not a state dict")
    write_config(tmp_path, model="unet_resnet34", encoder_weights=config_value)
    proc = run_snakemake(tmp_path, "results/train/fold0/model.pth", check=False)
    assert proc.returncode != 0
    assert "rule fetch_encoder_weights" not in proc.stdout + proc.stderr
    log = (tmp_path / "logs/train_fold/fold0.log").read_text() + proc.stderr
    assert "is not loadable by torch.load" in log and str(weights.name) in log, log[-3000:]
