"""A sweep's runs on disk: each run folder's config.yaml (written once, never replaced by another), and the
pipeline's snakemake started in that folder, timed, with its record (`sweep_run.json`).

The runs are ordinary pipeline runs: `snakemake --directory <folder> --configfile <folder>/config.yaml`.
The sweep uses Snakemake's own `--directory` rather than modules with prefixes (which rewrite the paths of
inputs and outputs but not those in params and scripts: checkpoint folders, GPU locks) or Paramspace
(a wildcard in every rule's paths, for every user of the pipeline).
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

from saltnet.config.resolve import ConfigError
from saltnet.experiments.spec import Experiment
from saltnet.runtime.atomic import write_json, write_text
from saltnet.runtime.jobs import machine

__all__ = ["HEADER", "check_run_folders", "write_run_config", "pipeline_command", "run_pipeline"]

log = logging.getLogger(__name__)
HEADER = "# Written by the sweep of {experiment} (workflow/sweep.smk): this run's whole config.\n"


def _read_config(path: Path) -> dict | None:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def check_run_folders(experiment: Experiment) -> None:
    """Raise ConfigError where a run folder holds a config.yaml other than the one the experiment file now
    makes: its results were trained with that one, and a changed variant must get a new name (or the
    folder be removed by its owner), never be mixed with or replace them."""
    for run in experiment.runs:
        path = Path(run.folder) / "config.yaml"
        if path.exists() and _read_config(path) != run.config:
            raise ConfigError(
                f"experiment {experiment.path}, variant {run.variant}: {path} holds another config than the "
                "experiment file now gives this run (the file or the preset changed since it ran); give the "
                "changed variant a new name, or remove that run folder to run it again")


def write_run_config(out: str | Path, config: dict, experiment: str) -> None:
    """`config` as YAML at `out`; an existing different file is an error (check_run_folders said so first)."""
    out = Path(out)
    if out.exists() and _read_config(out) != config:
        raise FileExistsError(f"{out}: holds another config; the sweep never replaces a run's config")
    write_text(out, HEADER.format(experiment=experiment) + yaml.safe_dump(config, sort_keys=False))


def pipeline_command(folder: Path, snakefile: str, targets: list[str], cores: int, run_args: str,
                     python: str = sys.executable) -> list[str]:
    """The pipeline's snakemake command line for run `folder`: resumes what a killed run left
    (--rerun-incomplete), and reruns only what is missing (--rerun-triggers mtime)."""
    folder = Path(folder).resolve()
    return [python, "-m", "snakemake", "-s", str(snakefile), "--directory", str(folder),
            "--configfile", str(folder / "config.yaml"), "--cores", str(cores), "--rerun-incomplete",
            "--rerun-triggers", "mtime", *shlex.split(run_args), "--", *targets]


def run_pipeline(folder: Path, snakefile: str, targets: list[str], cores: int, run_args: str, out: str,
                 log_file: str | None = None, python: str = sys.executable) -> dict:
    """Run the pipeline in `folder`, its output streamed to the terminal (each line prefixed with the run)
    and to `log_file`; write the record (command, wall seconds, machine) to `out`. Raises RuntimeError
    naming the folder if it fails."""
    command = pipeline_command(folder, snakefile, targets, cores, run_args, python)
    resumed = (Path(folder) / "results/train").exists()
    log.info("%s", shlex.join(command))
    started = time.time()
    label = "/".join(Path(folder).parts[-2:]) if Path(folder).name.startswith("seed") else Path(folder).name
    copy = open(log_file, "a") if log_file else None
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        for line in proc.stdout:  # side by side runs (on a cluster) stay apart: each line names its run
            sys.stdout.write(f"[{label}] {line}")
            sys.stdout.flush()
            if copy:
                copy.write(line)
                copy.flush()
    if copy:
        copy.close()
    seconds = time.time() - started
    if proc.returncode != 0:
        raise RuntimeError(f"run {folder}: the pipeline failed (exit {proc.returncode}); its log says why: "
                           f"{folder}/.snakemake/log/ and {folder}/logs/")
    record = {"command": shlex.join(command), "wall_s": round(seconds, 1), "resumed": resumed,
              "machine": machine()}
    write_json(out, record)
    return record
