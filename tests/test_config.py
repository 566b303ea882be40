"""Config keys as a user types them on `snakemake --config`: coerced to the schema's types, clear errors."""

from __future__ import annotations

import copy
import re

import pytest
import yaml
from snakemake.cli import parse_config
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from conftest import REPO, TINY_CONFIG, run_snakemake
from saltnet.config.resolve import PRESETS, ConfigError, coerce_config, load_schema, resolve_config

SCHEMA_PATH = REPO / "workflow/schemas/config.schema.yaml"
SCHEMA = load_schema(SCHEMA_PATH)


def coerced(**overrides) -> dict:
    """TINY_CONFIG with `overrides` merged as `snakemake --config` would, then coerced."""
    config = copy.deepcopy(TINY_CONFIG)
    for key, value in overrides.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and key in config else value
    return coerce_config(config, SCHEMA)


# --- what Snakemake itself delivers (the reason for the coercion) ----------------------------------

@pytest.mark.parametrize("entry, delivered", [
    ("bf16=false", {"bf16": "false"}),          # only True/False become booleans
    ("bf16=False", {"bf16": False}),
    ("threshold=0.4", {"threshold": 0.4}),
    ("folds={n: 3}", {"folds": {"n": "3"}}),    # YAML BaseLoader: every nested scalar a string
    ("gpu_slots=null", {"gpu_slots": "null"}),
    ("gpu_slots=", {"gpu_slots": None}),
])
def test_what_snakemake_delivers(entry, delivered):
    assert parse_config([entry]) == delivered


def test_snakemake_refuses_dotted_keys_itself():
    with pytest.raises(ValueError, match="valid identifier"):
        parse_config(["folds.n=3"])


# --- coerce_config on hand-made dicts ----------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("false", False), ("False", False), ("true", True), ("True", True), ("auto", "auto"), (False, False),
])
def test_bf16_forms(text, value):
    bf16 = coerced(bf16=text)["bf16"]
    assert bf16 == value and type(bf16) is type(value)


def test_numbers_and_null():
    config = coerced(threshold="0.4", seed="7", gpu_slots="null")
    assert config["threshold"] == 0.4 and config["seed"] == 7 and config["gpu_slots"] is None
    assert type(config["seed"]) is int


def test_nested_object_values():
    config = coerced(folds={"n": "3"}, train={"lr": "1e-3", "epochs": "2"}, predict={"tta": "false"})
    assert config["folds"] == {"n": 3, "seed": 42}
    assert config["train"]["lr"] == 1e-3 and config["train"]["epochs"] == 2
    assert config["predict"]["tta"] is False


def test_object_given_as_a_string():
    config = coerce_config({"folds": "{n: 3, seed: 7}"}, SCHEMA)
    assert config["folds"] == {"n": 3, "seed": 7}


def test_strings_the_schema_wants_stay_strings():
    config = coerced(data_dir="true", encoder_weights="none", model="unet_resnet34")
    assert config["data_dir"] == "true" and config["encoder_weights"] == "none"


@pytest.mark.parametrize("key, text, fragment", [
    ("bf16", "maybe", "'maybe' is not one of ['auto', True, False]"),
    ("threshold", "high", "'high' does not match '^auto$'"),
    ("gpu_slots", "None", "'None' is not of type 'integer', 'null'"),
])
def test_bad_value_stays_a_string_for_the_schema_to_refuse(key, text, fragment):
    config = coerced(**{key: text})
    assert config[key] == text
    with pytest.raises(WorkflowError) as error:
        validate(config, schema=str(SCHEMA_PATH))
    assert fragment in str(error.value)


def test_partial_folds_gets_the_seed_default_from_the_schema():
    config = {key: value for key, value in TINY_CONFIG.items() if key != "folds"}
    config["folds"] = {"n": "3"}  # a config file without folds, plus --config 'folds={n: 3}'
    validate(coerce_config(config, SCHEMA), schema=str(SCHEMA_PATH))
    assert config["folds"] == {"n": 3, "seed": 42, "run": None}


@pytest.mark.parametrize("key, value, hint", [
    ("folds.n", 3, "write --config 'folds={n: 3}'"),
    ("train.epochs", 5, "write --config 'train={epochs: 5}'"),
])
def test_dotted_key_names_the_key_and_the_fix(key, value, hint):
    with pytest.raises(ValueError) as error:
        coerce_config({**TINY_CONFIG, key: value}, SCHEMA)
    assert f"config key {key!r}: Snakemake does not nest keys with dots" in str(error.value)
    assert hint in str(error.value)


# --- real dry runs -------------------------------------------------------------------------------------

@pytest.mark.snakemake
def test_dry_run_accepts_config_as_typed(tiny_workdir):
    proc = run_snakemake(tiny_workdir, "-n", "--config", "bf16=false", "threshold=0.4", "folds={n: 3}")
    assert set(re.findall(r"logs/train_fold/fold(\d+)\.log", proc.stdout)) == {"0", "1", "2"}, proc.stdout[-2000:]
    assert re.search(r"^train_fold\s+3$", proc.stdout, re.MULTILINE)


def _predict_inputs(dry_run_stdout: str) -> dict[str, list[str]]:
    """fold -> the model files of its predict_fold job, from a dry run's job blocks."""
    blocks = re.findall(r"^rule predict_fold:\n    input: (.*)\n    output: results/predict/fold(\d+)/test\.npz",
                        dry_run_stdout, re.M)
    return {fold: sorted(p for p in inputs.split(", ") if p.endswith("model.pth")) for inputs, fold in blocks}


@pytest.mark.snakemake
def test_dry_run_predicts_each_fold_with_the_models_of_predict_stages(tiny_workdir):
    """predict.stages [train, finetune]: each fold's prediction job takes both stages' model files; by
    default the last stage's alone."""
    both = _predict_inputs(run_snakemake(tiny_workdir, "-n", "--config", "predict={stages: [train, finetune]}").stdout)
    assert both == {fold: [f"results/finetune/fold{fold}/model.pth", f"results/train/fold{fold}/model.pth"]
                    for fold in ("0", "1")}
    assert _predict_inputs(run_snakemake(tiny_workdir, "-n").stdout) == {
        fold: [f"results/finetune/fold{fold}/model.pth"] for fold in ("0", "1")}


@pytest.mark.snakemake
def test_dry_run_dotted_key_in_config_file_names_the_fix(tiny_workdir):
    extra = tiny_workdir / "extra.yaml"
    extra.write_text(yaml.safe_dump({"folds.n": 3}))
    proc = run_snakemake(tiny_workdir, "-n", "--configfile", str(tiny_workdir / "config.yaml"), str(extra),
                         check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config key 'folds.n': Snakemake does not nest keys with dots; write --config 'folds={n: 3}'" in output


@pytest.mark.snakemake
def test_dry_run_dotted_key_on_command_line_is_refused(tiny_workdir):
    proc = run_snakemake(tiny_workdir, "-n", "--config", "folds.n=3", check=False)
    assert proc.returncode != 0  # Snakemake refuses it before the Snakefile runs, so with its own words
    assert "Config entry must start with a valid identifier" in proc.stdout + proc.stderr


@pytest.mark.parametrize("text", ["null", "~"])
def test_optional_stage_turned_off_on_the_command_line(text):
    """--config pseudo=null arrives as a string; pseudo is null or a stage (an anyOf): the preset's is replaced."""
    config = resolve_config([PRESETS / "cpu.yaml"], {"pseudo": text})
    assert config["pseudo"] is None


def test_a_stage_states_its_augmentation_and_inherits_the_top_level_one_when_silent():
    """A stage's own `augment` replaces the top-level one whole (its other keys: the schema's defaults);
    the other stages, pseudo's included, take the top-level one; each stage trains what its section says."""
    from saltnet.config.settings import settings_of

    config = resolve_config([PRESETS / "cpu.yaml"], {"augment": {"p": 0.25, "shift": 0.05},
                                                     "finetune": {"augment": "{p: 0.5, scale: 0.1}"}})
    assert config["train"]["augment"] == config["pseudo"]["augment"] == config["augment"]
    assert config["augment"]["shift"] == 0.05
    assert config["finetune"]["augment"] == {"hflip": True, "p": 0.5, "shift": 0.0, "scale": 0.1, "rotate": 0.0,
                                             "brightness": 0.0}
    assert settings_of(config, "finetune").augment_settings.scale == 0.1
    assert settings_of(config, "pseudo").augment_settings.shift == 0.05


def test_a_stages_augmentation_is_validated_by_its_key():
    with pytest.raises(ConfigError, match=r"finetune\.augment"):
        resolve_config([PRESETS / "cpu.yaml"], {"finetune": {"augment": {"p": 2.0}}})


def test_a_wrong_top_level_augmentation_is_named_once_not_in_each_stage_it_would_reach():
    with pytest.raises(ConfigError) as err:
        resolve_config([PRESETS / "cpu.yaml"], {"augment": {"p": 2.0}})
    assert "augment.p" in str(err.value) and "train.augment" not in str(err.value)


@pytest.mark.parametrize("overrides, key", [
    ({"augment": {"shift": 0.1}}, "config key augment: shift 0.1"),
    # the stage's own replaces the top-level one whole, so its p is 0 although the top-level p is not
    ({"augment": {"p": 0.3}, "finetune": {"augment": {"rotate": 5}}}, "config key finetune.augment: rotate 5"),
])
def test_a_warp_that_p_0_would_ignore_is_refused(overrides, key):
    """A shift, scale, rotation or brightness with p 0 reaches no image: refused, not silently dropped."""
    with pytest.raises(ConfigError, match=re.escape(key)):
        resolve_config([PRESETS / "cpu.yaml"], overrides)


def test_optional_stage_given_as_a_string_is_a_stage():
    stage = "{size: 128, epochs: 3, batch_size: 16, lr: 1e-3, wd: 1e-4}"
    config = resolve_config([PRESETS / "cpu.yaml"], {"pseudo": stage})
    assert config["pseudo"]["epochs"] == 3 and config["pseudo"]["lr"] == 1e-3


@pytest.mark.parametrize("overrides, stages", [
    ({}, ["finetune", "pseudo"]),  # the preset's
    ({"predict": {"stages": []}}, ["pseudo"]),  # [] is the last stage's models alone
    ({"pseudo": None}, ["finetune"]),  # the preset's less the stage this run does not train
    ({"predict": {"stages": ["pseudo", "finetune"]}}, ["finetune", "pseudo"]),  # in training order
    ({"pseudo": None, "predict": {"stages": ["train", "finetune"]}}, ["train", "finetune"]),
    ({"predict": {"stages": ["pseudo"]}}, ["pseudo"]),
    # a stage the run does not train is left out, and the resolved config says so
    ({"pseudo": None, "predict": {"stages": ["finetune", "pseudo"]}}, ["finetune"]),
])
def test_the_stages_whose_models_predict(overrides, stages):
    from saltnet.config.resolve import predict_stages

    config = resolve_config([PRESETS / "cpu.yaml"], overrides)
    assert predict_stages(config) == stages
    assert config["predict"]["stages"] in (stages, [])


@pytest.mark.parametrize("overrides, message", [
    ({"predict": {"stages": ["finetune"]}},
     "config key predict.stages: ['finetune'] leaves out the last stage this run trains, 'pseudo', which would "
     "then train for nothing"),
    ({"pseudo": None, "predict": {"stages": ["pseudo"]}},
     "['pseudo'] leaves out the last stage this run trains, 'finetune'"),
    ({"predict": {"stages": ["finetune", "swa"]}}, "predict.stages"),
    ({"predict": {"stages": ["finetune", "finetune"]}}, "predict.stages"),
])
def test_a_predicting_stage_the_run_has_not_is_refused(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_config([PRESETS / "cpu.yaml"], overrides)
