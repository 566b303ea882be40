"""The conda env files of the rules (envs/*.yaml) agree with pyproject.toml and with each other."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from conftest import REPO

ENVS = sorted((REPO / "envs").glob("*.yaml"))
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
PYPROJECT = {canonicalize_name(Requirement(dep).name): Requirement(dep) for dep in PROJECT["dependencies"]}
NOT_IN_JOBS = {"snakemake", "jsonschema"}  # run the jobs and check the config; the job scripts do not need them


def env_packages(path) -> tuple[str, dict[str, Requirement]]:
    """(python version, pip requirements by canonical name) of a conda env file."""
    deps = yaml.safe_load(path.read_text())["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and re.fullmatch(r"python[=<>]=?.*", d))
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    reqs = [Requirement(line) for line in pip]
    return python.split("=", 1)[1].lstrip("="), {canonicalize_name(r.name): r for r in reqs}


def pinned(req: Requirement) -> str:
    (spec,) = req.specifier
    assert spec.operator == "==", f"{req} is not pinned with =="
    return spec.version


def test_there_is_an_env_for_light_and_for_gpu_rules():
    assert {path.stem for path in ENVS} >= {"data", "train"}


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_pins_satisfy_pyproject(path):
    python, packages = env_packages(path)
    assert SpecifierSet(PROJECT["requires-python"]).contains(python + ".0"), f"python {python}"
    for name, req in packages.items():
        version = pinned(req)
        assert name in PYPROJECT, f"{path.name}: {name} is not a dependency in pyproject.toml"
        assert PYPROJECT[name].specifier.contains(version), f"{path.name}: {req} vs pyproject {PYPROJECT[name]}"
        if any(spec.operator == "==" for spec in PYPROJECT[name].specifier):
            assert str(PYPROJECT[name].specifier) == f"=={version}", f"{path.name}: {req} vs {PYPROJECT[name]}"


def test_train_env_has_every_runtime_dependency():
    _, packages = env_packages(REPO / "envs/train.yaml")
    missing = set(PYPROJECT) - NOT_IN_JOBS - set(packages)
    assert not missing, f"envs/train.yaml lacks {sorted(missing)}"


def test_data_env_is_a_subset_of_the_train_env_at_the_same_versions():
    _, data = env_packages(REPO / "envs/data.yaml")
    _, train = env_packages(REPO / "envs/train.yaml")
    assert not {"torch", "torchvision", "fastai"} & set(data), "the light rules need no torch stack"
    assert {name: pinned(req) for name, req in data.items()} == {name: pinned(train[name]) for name in data}


def test_the_light_rules_scripts_import_no_torch():
    """What each rule with envs/data.yaml imports (its script's saltnet imports) leaves torch and fastai
    unloaded, so that env can do without them."""
    modules = set()
    for name, block in _rules():
        if '"../../envs/data.yaml"' in block:
            script = re.search(r'script:\s*\n\s*"\.\./\.\./(src/scripts/\w+\.py)"', block)
            if script is None:  # a target that runs nothing (report_partial)
                continue
            text = (REPO / script.group(1)).read_text()
            modules |= set(re.findall(r"^from (saltnet[\w.]*) import", text, flags=re.M))
    assert "saltnet.steps" in modules and "saltnet.report" in modules
    loaded = "sorted(m for m in ('torch', 'fastai') if m in sys.modules)"
    code = f"import sys, {', '.join(sorted(modules))}; print({loaded})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]", (sorted(modules), proc.stdout)


def _rules():
    """(rule name, its text) for every `rule` in workflow/rules/*.smk."""
    for smk in sorted((REPO / "workflow/rules").glob("*.smk")):
        blocks = re.split(r"^(?=rule \w+:|use rule )", smk.read_text(), flags=re.M)
        for block in blocks:
            match = re.match(r"rule (\w+):", block)
            if match:
                yield match.group(1), block


def test_every_rule_names_an_existing_env_and_gpu_rules_the_train_env():
    rules = dict(_rules())
    assert {"train_fold", "predict_fold", "pack_data", "fetch_encoder_weights"} <= set(rules)
    for name, block in rules.items():
        match = re.search(r'conda:\s*\n\s*"\.\./\.\./(envs/\w+\.yaml)"', block)
        assert match, f"rule {name} has no conda: env"
        assert (REPO / match.group(1)).is_file(), f"rule {name}: {match.group(1)} does not exist"
        if re.search(r"^\s+gpu=1,", block, flags=re.M):
            assert match.group(1) == "envs/train.yaml", f"GPU rule {name} must use envs/train.yaml"
