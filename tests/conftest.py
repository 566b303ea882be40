"""Shared fixtures: the repo's paths, a tiny pipeline config, and a real `snakemake` runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
REAL_DATA = (REPO / "../shared/data/tgs").resolve()

# Small enough for a full DAG in about a minute on 2 cores: 2 folds, 48 px then 64 px, 1 epoch each.
TINY_CONFIG = {
    "data_dir": "demo",
    "demo": {"n_train": 24, "n_test": 8, "seed": 0},
    "image_size": 101,
    "folds": {"n": 2, "seed": 42},
    "model": "resunet_scse",
    "encoder_weights": "none",
    "loss": "symmetric_lovasz",
    "seed": 42,
    "bf16": "auto",
    "augment": {"hflip": True, "p": 0.5, "shift": 0.1, "scale": 0.1, "rotate": 10, "brightness": 0.1},
    "valid_fraction": 0.5,
    "train": {"size": 48, "epochs": 1, "batch_size": 8, "lr": 1e-3, "wd": 1e-7, "loss": "bce_dice"},
    "finetune": {"size": 64, "epochs": 1, "batch_size": 8, "lr": 1e-3, "wd": 1e-7},
    "predict": {"batch_size": 16, "tta": True},
    "threshold": 0.5,
    "checkpoint_minutes": 0,  # a checkpoint after every epoch: the resume tests kill folds after one
}


# The keys a TrainSettings needs (the schema has no default for them): a toy stage for unit tests.
STAGE = {"model": "resunet_scse", "size": 32, "epochs": 1, "batch_size": 8, "lr": 1e-3, "wd": 1e-7}


# What a run is for, without the report's figures (rule all adds those): for tests of the DAG's jobs.
DAG_TARGETS = ("results/submission.csv", "results/cv_score.json")


def load_tool(name: str):
    """The module of tools/<name>.py (the tools are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_config(workdir: Path, **overrides) -> Path:
    """Write TINY_CONFIG updated with `overrides` (top-level keys) to workdir/config.yaml."""
    config = {**TINY_CONFIG, **overrides}
    path = Path(workdir) / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


_CURRENT_TEST: dict = {}


@pytest.fixture(autouse=True)
def _current_test(request):
    """The running test, for require_marker."""
    _CURRENT_TEST["item"] = request.node
    yield
    _CURRENT_TEST.pop("item", None)


def require_marker(name: str) -> None:
    """Fail a test that does what marker `name` says without carrying it: the tiers stay honest."""
    item = _CURRENT_TEST.get("item")
    if item is not None and item.get_closest_marker(name) is None:
        pytest.fail(f"{item.nodeid} needs @pytest.mark.{name}: it runs Snakemake", pytrace=False)


def pytest_collection_modifyitems(items):
    """Tests that take the real data carry the real_data marker, so `-m "not real_data"` leaves them out."""
    for item in items:
        if "real_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_data)


def run_snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900,
                  env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the repo's Snakefile in `workdir` (which holds config.yaml); output captured as text.

    GPU rules get one thread each, so that the two folds of the tiny config run side by side on
    the 2 cores (their start-up, mostly imports, then overlaps).
    """
    require_marker("snakemake")
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2", *args]
    if "--set-threads" not in args:  # last: --set-threads takes every word up to the next option
        cmd += ["--set-threads", "train_fold=1", "finetune_fold=1", "predict_fold=1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """One complete run of the DAG on the tiny demo config, shared by the tests that only read it."""
    workdir = tmp_path_factory.mktemp("run")
    write_config(workdir)
    proc = run_snakemake(workdir)
    (workdir / "terminal.txt").write_text(proc.stdout + proc.stderr)  # what the user saw
    return workdir


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Path:
    """A small valid data folder in the competition's layout (12 training, 4 test images); read only."""
    from saltnet.data.demo import make_demo_data

    folder = tmp_path_factory.mktemp("data") / "tgs"
    make_demo_data(folder, n_train=12, n_test=4, seed=0)
    return folder


@pytest.fixture
def tiny_workdir(tmp_path: Path) -> Path:
    """A work directory holding the tiny config."""
    write_config(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (REAL_DATA / "train.csv").is_file():
        pytest.skip(f"real competition data not found at {REAL_DATA}")
    return REAL_DATA
