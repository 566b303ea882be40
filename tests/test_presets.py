"""A preset means what its file says: resolved from the schema's defaults and the file alone, the same from
the repository root and from another directory, and every tool builds a stage's settings as the rules do."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SNAKEMAKE
from saltnet.config.resolve import DEMO_PRESET, PRESETS, ConfigError, resolve_config
from saltnet.config.settings import TrainSettings, settings_of
from saltnet.data.augment import AugmentSettings

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
PRESET_NAMES = sorted(p.stem for p in PRESETS.glob("*.yaml"))
CORES = 8
# What each per-fold job's threads must be at --cores 8: the competition preset's threads per GPU job are
# docs/gpu.md's 8; the CPU presets spread the cores over their folds (share).
THREADS = {"demo": 4, "cpu": 2, "competition": 8}


def expected_stage(preset: dict, stage: str) -> dict:
    """A stage's settings worked out by hand from the preset file and the schema's defaults (not through
    saltnet.config.resolve): the stage's key, else the preset's top-level key, else the schema's default."""
    top = {k: v["default"] for k, v in SCHEMA["properties"].items() if "default" in v}
    stage_defaults = {k: v["default"] for k, v in SCHEMA["definitions"]["stage"]["properties"].items()
                      if "default" in v}
    augment = {k: v["default"] for k, v in SCHEMA["definitions"]["augment"]["properties"].items()}
    out = {}
    for field in (f.name for f in dataclasses.fields(TrainSettings)):
        if field in preset[stage]:
            out[field] = preset[stage][field]
        elif field in preset:
            out[field] = preset[field]
        else:
            out[field] = stage_defaults.get(field, top.get(field))
    out["augment"] = {**augment, **preset[stage].get("augment", preset.get("augment", {}))}
    out["exclude"] = list(out["exclude"])
    if out["encoder_weights"] == "imagenet":  # the file rule fetch_encoder_weights downloads once
        from saltnet.models import get_model_spec

        out["encoder_weights"] = f"resources/weights/{get_model_spec(out['model']).encoder}.pth"
    return out


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """The workflow's files in a folder of their own, as a user's clone: its root is "the repository root"
    (and the real one's results/ is left alone)."""
    root = tmp_path_factory.mktemp("clone")
    shutil.copy(REPO / "Snakefile", root)
    for folder in ("workflow", "envs", "src/scripts"):
        shutil.copytree(REPO / folder, root / folder)
    return root


def resolve_in(cwd: Path, workdir: Path | None, snakefile: Path, preset: Path, data_dir: Path) -> tuple[dict, str]:
    """Run rule resolved_config (then a dry run of the whole DAG, for the jobs' threads) -> (its YAML, dry run)."""
    where = ["--directory", str(workdir)] if workdir else []
    data = [] if preset.stem == "demo" else ["--config", f"data_dir={data_dir}"]
    base = [str(SNAKEMAKE), "-s", str(snakefile), *where, "--cores", str(CORES), "--configfile", str(preset), *data]
    for extra in (["--", "resolved_config"], ["-n"]):
        proc = subprocess.run(base + extra, cwd=cwd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = (workdir or cwd) / "results/resolved_config.yaml"
    return yaml.safe_load(out.read_text()), proc.stdout


def job_threads(dry_run: str, rule: str) -> set[int]:
    """The threads Snakemake gives each job of `rule` in a dry run's job list."""
    blocks = re.split(r"\n(?=\S*rule \w+:)", dry_run)
    return {int(m) for block in blocks if re.match(rf"\S*rule {rule}:", block.strip())
            for m in re.findall(r"threads: (\d+)", block)}


@pytest.mark.snakemake
@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name == "competition" else name
                                  for name in PRESET_NAMES])  # competition's: the slowest (slow: its time)
def test_a_preset_resolves_to_its_file_from_any_directory(name, checkout, small_data, tmp_path):
    preset_file = checkout / "workflow/presets" / f"{name}.yaml"
    preset = yaml.safe_load(preset_file.read_text())
    # From the clone's root, the preset named by its relative path; from elsewhere, by its absolute path.
    at_root, root_dry = resolve_in(checkout, None, Path("Snakefile"), Path(f"workflow/presets/{name}.yaml"), small_data)
    elsewhere, other_dry = resolve_in(tmp_path, tmp_path / "run", checkout / "Snakefile", preset_file, small_data)
    assert at_root == elsewhere  # config files, threads, stages and the whole config
    for stage in ("train", "finetune"):
        assert at_root["stages"][stage] == expected_stage(preset, stage), stage
    assert at_root["threads_per_fold_job"] == THREADS[name]
    for dry in (root_dry, other_dry):
        for rule in ("train_fold", "finetune_fold", "predict_fold"):
            assert job_threads(dry, rule) == {THREADS[name]}, (rule, dry[-2000:])


@pytest.mark.snakemake
def test_without_a_config_file_the_demo_preset_runs(checkout, tmp_path):
    proc = subprocess.run([str(SNAKEMAKE), "-s", str(checkout / "Snakefile"), "--directory", str(tmp_path),
                           "--cores", "2", "--", "resolved_config"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resolved = yaml.safe_load((tmp_path / "results/resolved_config.yaml").read_text())
    assert resolved["config_files"] == [str(DEMO_PRESET)]
    assert resolved["config"]["data_dir"] == "demo"


@pytest.mark.snakemake
def test_a_preset_for_real_data_asks_for_data_dir(checkout, tmp_path):
    proc = subprocess.run([str(SNAKEMAKE), "-s", str(checkout / "Snakefile"), "--directory", str(tmp_path),
                           "--cores", "2", "-n", "--configfile", str(checkout / "workflow/presets/cpu.yaml")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "config key data_dir: not set" in proc.stdout + proc.stderr


def test_a_config_file_in_the_working_directory_is_not_merged_under_a_preset(tmp_path):
    """With --configfile, ./config.yaml is not read: a preset inherits nothing."""
    (tmp_path / "config.yaml").write_text("aux_weight: 0.9\naugment: {p: 0.5}\n")
    from saltnet.config.resolve import config_files

    assert config_files([str(PRESETS / "cpu.yaml")], tmp_path) == [PRESETS / "cpu.yaml"]
    assert config_files([], tmp_path) == [tmp_path / "config.yaml"]
    assert config_files([], tmp_path / "elsewhere") == [DEMO_PRESET]


def test_the_code_has_no_defaults_of_its_own():
    """TrainSettings and AugmentSettings take every default from the schema; the fields a preset must state
    have none."""
    top = {k: v.get("default") for k, v in SCHEMA["properties"].items()}
    for field in dataclasses.fields(TrainSettings):
        if field.name in SCHEMA["definitions"]["stage"]["required"] or field.name == "model":
            assert field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING, field.name
            continue
        default = field.default_factory() if field.default is dataclasses.MISSING else field.default
        stage_key = SCHEMA["definitions"]["stage"]["properties"].get(field.name, {})
        if "default" in stage_key:  # a stage key with a default of its own (swa, div_final)
            assert default == stage_key["default"], field.name
        elif field.name == "augment":
            assert default == {k: v["default"] for k, v in SCHEMA["definitions"]["augment"]["properties"].items()}
        else:
            assert (list(default) if isinstance(default, tuple) else default) == top[field.name], field.name
    augment = SCHEMA["definitions"]["augment"]["properties"]
    assert dataclasses.asdict(AugmentSettings()) == {k: v["default"] for k, v in augment.items()}


def test_the_workflow_reads_no_config_key_with_a_fallback():
    for path in [REPO / "Snakefile", *(REPO / "workflow/rules").glob("*.smk")]:
        text = path.read_text()
        assert "config.get(" not in text, path.name


def test_gpu_check_trains_the_rules_settings():
    """gpu-check's stages are the competition preset's, as the rules build them, from random init."""
    from saltnet.performance.gpucheck import _settings

    config = resolve_config([PRESETS / "competition.yaml"], {"data_dir": "x"})
    for stage, epochs in (("train", 3), ("finetune", 2)):
        rule = settings_of(config, stage, encoder_weights="none")
        assert _settings(config, stage, epochs) == dataclasses.replace(rule, epochs=epochs)
    assert settings_of(config, "train").loss == "symmetric_lovasz"
    assert settings_of(config, "train").augment["p"] == 0.0


@pytest.mark.parametrize("overrides, message", [
    ({"bogus": 1}, "config key bogus: unknown"),
    ({"train": {"epochs": "x"}}, "config key train.epochs: 'x' is not of type 'integer'"),
    ({"aux_weight": -1}, "config key aux_weight: -1 is less than the minimum of 0"),
    ({"aux_resolution": "native"}, "config key aux_resolution: 'native' is not one of ['output', 'level']"),
])
def test_a_wrong_key_is_named(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_config([PRESETS / "cpu.yaml"], overrides)


def test_a_stage_without_a_loss_gets_the_top_level_one_written_in():
    config = resolve_config([PRESETS / "cpu.yaml"], {"loss": "lovasz_hinge"})
    assert config["train"]["loss"] == "bce_dice" and config["finetune"]["loss"] == "lovasz_hinge"
