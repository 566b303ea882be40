"""A sweep's runs on disk: each run folder's config.yaml (written once, never replaced by another), and the
pipeline's snakemake started in that folder, timed, with its record (`sweep_run.json`).

The runs are ordinary pipeline runs: `snakemake --directory <folder> --configfile <folder>/config.yaml`.
The sweep uses Snakemake's own `--directory` rather than modules with prefixes (which rewrite the paths of
inputs and outputs but not those in params and scripts: checkpoint folders, GPU locks) or Paramspace
(a wildcard in every rule's paths, for every user of the pipeline).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from saltnet.config.resolve import ConfigError
from saltnet.experiments.spec import Experiment, with_schema_defaults
from saltnet.runtime.atomic import write_json, write_text
from saltnet.runtime.jobs import machine

__all__ = ["check_run_folders", "write_run_config", "pipeline_command", "run_pipeline"]

log = logging.getLogger(__name__)
HISTORY = "sweep_history.jsonl"  # every invocation of the run's snakemake by the sweep, one JSON line each


def _read_config(path: Path) -> dict | None:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def _same_recipe(a: dict | None, b: dict) -> bool:
    """Two run configs equal but for data_dir (the same data may lie elsewhere on another machine), each with
    the schema's defaults filled in: a key the schema added since a run, at its default, changes nothing."""
    if a is None:
        return False
    return with_schema_defaults({**a, "data_dir": None}) == with_schema_defaults({**b, "data_dir": None})


def check_run_folders(experiment: Experiment) -> None:
    """Raise ConfigError where a run folder holds a config.yaml other than the one the experiment file now
    makes: its results were trained with that one, and a changed variant must get a new name (or the
    folder be removed by its owner), never be mixed with or replace them."""
    for run in experiment.runs:
        path = Path(run.folder) / "config.yaml"
        if path.exists() and not _same_recipe(_read_config(path), run.config):
            raise ConfigError(
                f"experiment {experiment.path}, variant {run.variant}: {path} holds another config than the "
                "experiment file now gives this run (the file or the preset changed since it ran); give the "
                "changed variant a new name, or remove that run folder to run it again")


def write_run_config(out: str | Path, config: dict, experiment: str) -> None:
    """`config` as YAML at `out`; an existing file of the same recipe is kept as it is, a different one is an
    error (check_run_folders said so first)."""
    out = Path(out)
    if out.exists():
        if not _same_recipe(_read_config(out), config):
            raise FileExistsError(f"{out}: holds another config; the sweep never replaces a run's config")
        return
    header = f"# Written by the sweep of {experiment} (workflow/sweep.smk): this run's whole config.\n"
    write_text(out, header + yaml.safe_dump(config, sort_keys=False))


def pipeline_command(folder: Path, snakefile: str, targets: list[str], cores: int, run_args: str,
                     python: str = sys.executable) -> list[str]:
    """The pipeline's snakemake command line for run `folder`: resumes what a killed run left
    (--rerun-incomplete), and reruns only what is missing (--rerun-triggers mtime)."""
    folder = Path(folder).resolve()
    return [python, "-m", "snakemake", "-s", str(snakefile), "--directory", str(folder),
            "--configfile", str(folder / "config.yaml"), "--cores", str(cores), "--rerun-incomplete",
            "--rerun-triggers", "mtime", *shlex.split(run_args), "--", *targets]


def _die_with_parent() -> None:
    """In the child: SIGTERM when the parent (this job) dies, so that a killed sweep stops its runs'
    snakemakes too (which stop their jobs and free their locks). Linux; elsewhere nothing."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _history(folder: Path) -> list[dict]:
    path = Path(folder) / HISTORY
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def run_pipeline(folder: Path, snakefile: str, targets: list[str], cores: int, run_args: str, out: str,
                 log_file: str | None = None, python: str = sys.executable) -> dict:
    """Run the pipeline in `folder`, its output streamed to the terminal (each line prefixed with the run)
    and to `log_file`. Each invocation is appended to the folder's sweep_history.jsonl (command, start,
    seconds, whether it found nothing to do, machine), which no rerun deletes; the record `out` sums the
    invocations that did work: the wall time the run has cost, and the machine of the first. Raises
    RuntimeError naming the folder if it fails."""
    command = pipeline_command(folder, snakefile, targets, cores, run_args, python)
    log.info("%s", shlex.join(command))
    started = time.time()
    label = "/".join(Path(folder).parts[-2:]) if Path(folder).name.startswith("seed") else Path(folder).name
    idle = False
    with open(log_file or os.devnull, "a") as copy, subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            preexec_fn=_die_with_parent) as proc:
        for line in proc.stdout:  # side by side runs (on a cluster) stay apart: each line names its run
            idle = idle or line.startswith("Nothing to be done")
            sys.stdout.write(f"[{label}] {line}")
            sys.stdout.flush()
            copy.write(line)
            copy.flush()
    entry = {"command": shlex.join(command), "start": started, "wall_s": round(time.time() - started, 1),
             "exit": proc.returncode, "nothing_to_do": idle, "machine": machine()}
    with open(Path(folder) / HISTORY, "a") as history:
        history.write(json.dumps(entry) + "\n")
    if proc.returncode != 0:
        raise RuntimeError(f"run {folder}: the pipeline failed (exit {proc.returncode}); its log says why: "
                           f"{folder}/.snakemake/log/ and {folder}/logs/")
    history = _history(folder)
    runs = [r for r in history if not r.get("nothing_to_do")] or history  # a rerun that found all done costs nothing
    record = {"command": runs[0]["command"], "wall_s": round(sum(r["wall_s"] for r in runs), 1),
              "invocations": len(runs), "machine": runs[0]["machine"]}
    write_json(out, record)
    return record
