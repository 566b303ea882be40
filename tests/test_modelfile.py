"""A model file knows what it is: architecture, size, stage and settings travel with the weights."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch

from conftest import STAGE, run_snakemake
from saltnet.config.settings import TrainSettings
from saltnet.models import build_model
from saltnet.models.modelfile import check_model_file, load_model, read_model_file, save_model_file

SETTINGS = TrainSettings(**{**STAGE, "model": "resunet_scse_ds", "aux_weight": 0.3})


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model(SETTINGS.model, "none", SETTINGS.size)
    path = tmp_path / "model.pth"
    save_model_file(path, model.state_dict(), SETTINGS, "finetune")
    return path, model


def test_the_file_says_what_it_holds_and_builds_it(saved):
    path, model = saved
    found = read_model_file(path)
    assert (found.model, found.size, found.stage) == ("resunet_scse_ds", 32, "finetune")
    assert found.settings["aux_weight"] == 0.3 and len(found.settings_digest) == 16
    x = torch.randn(1, 3, 101, 101)
    with torch.no_grad():
        assert torch.equal(found.build()(x), model.eval()(x))


def test_a_bare_state_dict_is_refused_by_name(tmp_path):
    path = tmp_path / "old.pth"
    torch.save(build_model("resunet_scse", "none", 32).state_dict(), path)
    with pytest.raises(ValueError, match=r"old\.pth does not say what model it holds"):
        read_model_file(path)


def test_other_settings_are_refused_naming_both_sides(saved):
    path, _ = saved
    found = read_model_file(path)
    check_model_file(found, dataclasses.replace(SETTINGS, epochs=9, checkpoint_minutes=0))  # planned: allowed
    with pytest.raises(ValueError) as error:
        load_model(path, dataclasses.replace(SETTINGS, aux_weight=0.1, loss="bce"))
    message = str(error.value)
    assert "model.pth (resunet_scse_ds at 32 px, stage finetune" in message
    assert "aux_weight: file 0.3, the config 0.1" in message
    assert "loss: file 'symmetric_lovasz', the config 'bce'" in message


def test_a_file_from_before_a_later_key_reads_as_its_default(saved):
    """A model file written before `aux_resolution` existed holds none: it is the default's recipe
    ('output'), used as such, and refused by a config that asks for the levels' own resolution."""
    path, _ = saved
    found = read_model_file(path)
    older = dataclasses.replace(found, settings={k: v for k, v in found.settings.items() if k != "aux_resolution"})
    check_model_file(older, SETTINGS)
    with pytest.raises(ValueError, match=r"aux_resolution: file None, the config 'level'"):
        check_model_file(older, dataclasses.replace(SETTINGS, aux_resolution="level"))
    base = SETTINGS.fingerprint(0, None, "data")  # a checkpoint's: the default is not hashed, so older ones resume
    assert dataclasses.replace(SETTINGS, aux_resolution="level").fingerprint(0, None, "data") != base
    # what commit 1702c18, before the key, gave these settings: a later field must not change it
    assert TrainSettings(**STAGE).fingerprint(0, None, "data") == "ac0f004d1cdb221b"


def test_init_weights_of_another_architecture_are_refused(saved, tmp_path):
    from saltnet.data.folds import split_folds
    from saltnet.data.loaders import make_dataloaders  # noqa: F401  (the training stack imports)
    from saltnet.data.pack import PackedData
    from saltnet.training.fold import train_fold

    path, _ = saved
    rng = np.random.default_rng(0)
    masks = (rng.random((8, 101, 101)) > 0.5).astype(np.uint8)
    data = PackedData(np.array([f"i{k}" for k in range(8)]), rng.integers(0, 255, (8, 101, 101), dtype=np.uint8), masks)
    folds = split_folds(data.ids, data.masks, 2, 0)
    with pytest.raises(ValueError, match=r"hold resunet_scse_ds at 32 px.*this stage trains 'resunet_scse'"):
        train_fold(data, folds, 0, TrainSettings(**STAGE), tmp_path / "work", torch.device("cpu"), str(path))


@pytest.mark.snakemake
def test_prediction_refuses_a_model_trained_with_another_recipe(finished_run, tmp_path):
    """Model files kept by mtime (--rerun-triggers mtime) while the config changed: predict_fold stops and
    names the file, its settings and the config's, instead of predicting with a misread model."""
    run = shutil.copytree(finished_run, tmp_path / "run", symlinks=True)
    proc = run_snakemake(run, "results/predict/fold0/oof.npz", "--rerun-triggers", "mtime", "-R", "predict_fold",
                         "--config", "aux_weight=0.7", check=False)
    log = (run / "logs/predict_fold/fold0.log").read_text()
    assert proc.returncode != 0
    assert "results/finetune/fold0/model.pth (resunet_scse at 64 px, stage finetune" in log
    assert "aux_weight: file 0.1, the config 0.7" in log
