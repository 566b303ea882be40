"""saltnet.config.settings: a stage's TrainSettings from a config, without importing torch."""

import subprocess
import sys

import pytest

from saltnet.config.settings import TrainSettings, stage_settings

CONFIG = {"data_dir": "demo", "predict": {"batch_size": 64}, "folds": {"n": 2}, "model": "resunet_scse_ds",
          "loss": "symmetric_lovasz", "seed": 7, "augment": {"p": 0.1},
          "train": {"size": 128, "epochs": 3, "batch_size": 16, "lr": 3e-3, "wd": 1e-4, "loss": "bce_dice"},
          "finetune": {"size": 128, "epochs": 2, "batch_size": 16, "lr": 1e-3, "wd": 1e-4}}


def test_the_stage_wins_over_the_top_level_and_other_sections_stay_out():
    train = TrainSettings(**stage_settings(CONFIG, "train"))
    assert (train.loss, train.epochs, train.lr, train.seed, train.augment) == ("bce_dice", 3, 3e-3, 7, {"p": 0.1})
    finetune = stage_settings(CONFIG, "finetune", encoder_weights="none")
    assert finetune["loss"] == "symmetric_lovasz" and finetune["epochs"] == 2 and finetune["encoder_weights"] == "none"
    assert not {"data_dir", "predict", "folds", "train", "finetune"} & set(finetune)


def test_reordering_the_config_does_not_change_the_params():
    reordered = dict(reversed(list(CONFIG.items())))
    reordered["train"] = dict(reversed(list(CONFIG["train"].items())))
    assert list(stage_settings(reordered, "train").items()) == list(stage_settings(CONFIG, "train").items())


def test_a_stage_key_that_is_no_setting_is_rejected():
    with pytest.raises(TypeError, match="momentum"):
        TrainSettings(**stage_settings({**CONFIG, "train": {**CONFIG["train"], "momentum": 0.9}}, "train"))


def test_importing_settings_does_not_import_torch():
    """The Snakefile imports it in every job and on the SLURM login node."""
    code = "import sys, saltnet.config.settings; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"
