"""The pipeline on a real single-node SLURM cluster (workflow/cluster/local-slurm.sh, two fake GPUs).

Runs through workflow/profiles/slurm with only its two EDIT values replaced. Proof comes from SLURM
itself (`scontrol show job`: state, time limit, GPUs asked) and from the jobs' run.json files.
Local-cluster settings passed on the command line, as in /work/shared/notes/local-slurm.md: squeue
for job status (no accounting database), a 5 s first status check, one CPU and 1 GB per attempt per
GPU job (the node has 2 cores; the rules ask 8 threads and 8 GB per attempt for real GPUs).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import DAG_TARGETS, REPO, SNAKEMAKE, write_config

pytestmark = pytest.mark.slurm

SCRIPT = REPO / "workflow/cluster/local-slurm.sh"
PROFILE = REPO / "workflow/profiles/slurm/config.yaml"
GPU_RULES = ("train_fold", "finetune_fold", "predict_fold")
SMALL_JOBS = ["--set-threads", *(f"{rule}=1" for rule in GPU_RULES),
              "--set-resources", *(f"{rule}:mem_mb=1000*attempt" for rule in GPU_RULES)]


def _slurm_installed() -> bool:
    return all(shutil.which(cmd) for cmd in ("munged", "slurmctld", "slurmd", "sbatch"))


@pytest.fixture(scope="session")
def slurm_env() -> dict:
    """Start the local cluster for the session (stop it after, unless it was already running)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: local-slurm.sh installs the Debian SLURM packages, starts munged, slurmctld, slurmd")
    if not _slurm_installed() and not shutil.which("apt-get"):
        pytest.skip("SLURM is not installed and there is no apt-get to install slurmctld slurmd slurm-client munge")
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[slurm]'")
    already_running = subprocess.run([str(SCRIPT), "status"], capture_output=True, text=True).returncode == 0
    started = time.time()
    proc = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        if not _slurm_installed():
            pytest.skip(f"the SLURM packages could not be installed: {proc.stderr.strip()[-500:]}")
        pytest.fail(f"local SLURM cluster did not start:\n{proc.stdout}\n{proc.stderr}")
    print(f"\nTIMING local SLURM cluster start: {time.time() - started:.0f} s")
    conf = re.search(r"^export SLURM_CONF=(\S+)$", proc.stdout, flags=re.M).group(1)
    # account and partition as a user gives them: in the environment, no tracked file edited
    yield {**os.environ, "SLURM_CONF": conf, "SALTNET_SLURM_ACCOUNT": "saltnet", "SALTNET_SLURM_PARTITION": "gpu"}
    if not already_running:
        subprocess.run([str(SCRIPT), "stop"], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def profile() -> Path:
    """The repo's SLURM profile as tracked: it needs no edit (account and partition come from slurm_env)."""
    tracked = yaml.safe_load(PROFILE.read_text())
    assert "EDIT_ME" not in PROFILE.read_text()
    assert not {"slurm_account", "slurm_partition"} & set(tracked["default-resources"])
    return PROFILE.parent


def snakemake_cmd(workdir: Path, profile: Path, *args: str) -> list[str]:
    """`args` first: --set-threads/--set-resources take every word up to the next option."""
    return [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args,
            "--profile", str(profile), "--slurm-status-command", "squeue",
            "--slurm-init-seconds-before-status-checks", "5"]


def run(cmd: list[str], env: dict, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def last_job_id(env: dict) -> int:
    out = subprocess.run(["squeue", "-h", "--states=all", "-o", "%i"], capture_output=True, text=True, env=env).stdout
    return max((int(i) for i in out.split() if i.isdigit()), default=0)


def slurm_jobs(env: dict, after: int) -> list[dict]:
    """Jobs with an id above `after`, oldest first, as `scontrol show job` reports them, plus rule and fold."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, env=env).stdout
    jobs = []
    for line in out.splitlines():
        job = dict(re.findall(r"(\w[\w/:]*)=(\S*)", line))
        if "JobId" in job and int(job["JobId"]) > after:
            match = re.fullmatch(r"rule_(\w+?)_wildcards_(\d+)", job.get("Comment", ""))
            job["rule"], job["fold"] = (match.group(1), int(match.group(2))) if match else (None, None)
            jobs.append(job)
    return sorted(jobs, key=lambda job: int(job["JobId"]))


def read_run(workdir: Path, stage: str, fold: int) -> dict:
    return json.loads((workdir / f"results/{stage}/fold{fold}/run.json").read_text())


@pytest.mark.snakemake
def test_demo_dag_runs_through_slurm_with_one_gpu_per_job(tmp_path, slurm_env, profile):
    write_config(tmp_path)
    before, started = last_job_id(slurm_env), time.time()
    # The submission's part of the DAG (the report's figures are local jobs, tested elsewhere).
    proc = run(snakemake_cmd(tmp_path, profile, *DAG_TARGETS, *SMALL_JOBS), slurm_env)
    print(f"\nTIMING SLURM demo DAG (2 folds, 6 GPU jobs): {time.time() - started:.0f} s")
    assert (tmp_path / "results/submission.csv").is_file() and (tmp_path / "results/cv_score.json").is_file()

    jobs = slurm_jobs(slurm_env, before)
    assert Counter(job["rule"] for job in jobs) == {rule: 2 for rule in GPU_RULES}, "light rules must run locally"
    assert "localrule pack_data:" in proc.stdout + proc.stderr
    for job in jobs:
        assert job["JobState"] == "COMPLETED", job
        assert job["TresPerJob"] == "gres:gpu:1", f"{job['rule']} fold {job['fold']} asked no GPU: {job}"
        assert job["Partition"] == "gpu" and job["Account"] == "saltnet"

    runs = [read_run(tmp_path, stage, fold) for stage in ("train", "finetune") for fold in (0, 1)]
    gpus = [re.fullmatch(r"scheduler \(CUDA_VISIBLE_DEVICES=(\d+)\)", r["lease"]) for r in runs]
    assert all(gpus), [r["lease"] for r in runs]  # SLURM's choice reached the job, no local lock taken
    overlapping = [(a, b) for (a, ga), (b, gb) in itertools.combinations(zip(runs, gpus), 2)
                   if a["start"] < b["end"] and b["start"] < a["end"] and ga.group(1) == gb.group(1)]
    assert not overlapping, "two GPU jobs that ran at the same time got the same GPU"


def _limit(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


@pytest.mark.snakemake
@pytest.mark.slow  # about 4 minutes: SLURM must kill a job at a 1-minute limit, then rerun it
def test_fold_past_its_time_limit_is_resubmitted_longer_and_resumes(tmp_path, slurm_env, profile):
    """A time limit of `base` minutes on the first attempt, doubling per retry (an attempt-dependent
    --set-resources expression, as gpu_runtime() does in the rules), and about 2 x base minutes of
    epochs: SLURM kills the first attempt (it checks limits every 30 s), the second finishes the rest.
    Calibrated on this machine, now: `base` is 1 minute where an epoch takes under 24 s, more on a
    slower machine, so the test holds on any CPU."""
    stage = {"size": 48, "batch_size": 8, "lr": 1e-3, "wd": 1e-7}
    demo = {"n_train": 48, "n_test": 8, "seed": 0}
    write_config(tmp_path, demo=demo, train={**stage, "epochs": 3})
    # Calibrate: three epochs locally with the SLURM job's single thread; the first one warms up.
    run([str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2",
         "results/train/fold0/run.json", "--set-threads", "train_fold=1"], slurm_env)
    epoch_s = pd.read_parquet(tmp_path / "results/train/fold0/history.parquet")["seconds"].iloc[1:].median()
    epoch_s *= 1.2  # the checkpoint and best-model writes after each epoch are not in `seconds`
    base = max(1, math.ceil(2.5 * epoch_s / 60))  # the first attempt has time for at least one epoch
    epochs = max(3, math.ceil(2.0 * 60 * base / epoch_s))
    shutil.rmtree(tmp_path / "results/train")
    write_config(tmp_path, demo=demo, train={**stage, "epochs": epochs})

    before, started = last_job_id(slurm_env), time.time()
    run(snakemake_cmd(tmp_path, profile, "results/train/fold0/run.json", *SMALL_JOBS,
                      f"train_fold:runtime={base}*2**(attempt-1)", "--retries", "2"), slurm_env,
        timeout=900 + 420 * base)
    print(f"\nTIMING SLURM time limit {base} min -> retry -> resume ({epochs} epochs of ~{epoch_s:.1f} s): "
          f"{time.time() - started:.0f} s")

    attempts = [job for job in slurm_jobs(slurm_env, before) if job["rule"] == "train_fold"]
    states = [job["JobState"] for job in attempts]
    limits = [job["TimeLimit"] for job in attempts]
    print(f"attempts: {list(zip(states, limits))}")
    assert states[0] == "TIMEOUT" and states[-1] == "COMPLETED", states
    assert limits[:2] == [_limit(base), _limit(2 * base)], "the resubmitted fold must get a longer time limit"
    assert all(job["TresPerJob"] == "gres:gpu:1" for job in attempts)

    result = read_run(tmp_path, "train", 0)
    history = pd.read_parquet(tmp_path / "results/train/fold0/history.parquet")
    print(f"resumed from epoch {result['resumed_from_epoch']}; epoch seconds {history['seconds'].round(1).tolist()}")
    assert result["resumed_from_epoch"] > 0, "the resubmitted fold started from scratch"
    assert history["epoch"].tolist() == list(range(epochs)), "every epoch exactly once: none repeated or lost"
    log = (tmp_path / "logs/train_fold/fold0.log").read_text()
    assert f"resuming from checkpoint: {result['resumed_from_epoch']} epoch(s) already done" in log


@pytest.mark.slow  # about 2 minutes on a 2-core AVX2-only CPU: docs/measured.md#demo-and-test-suite-timings
@pytest.mark.snakemake
def test_keep_going_then_a_plain_rerun_resubmits_only_the_failed_fold(tmp_path, slurm_env, profile):
    """Fold 1's job is cancelled after its first epoch; fold 0 goes on; a plain rerun submits fold 1 only."""
    # Enough epochs that the job is still running when its first checkpoint appears: on a fast CPU these
    # epochs take 0.2 s, and with 3 of them the job had ended before the poll below could catch it.
    epochs = 30
    write_config(tmp_path, train={"size": 48, "epochs": epochs, "batch_size": 8, "lr": 1e-3, "wd": 1e-7})
    targets = [f"results/train/fold{k}/run.json" for k in (0, 1)]
    cmd = snakemake_cmd(tmp_path, profile, *targets, *SMALL_JOBS)
    checkpoint = tmp_path / "results/checkpoints/train/fold1/checkpoint.pth"
    started = time.time()
    # --retries 0: with the profile's retries, SLURM-cancelled jobs would be resubmitted at once.
    log = tmp_path / "first-run.log"
    first = subprocess.Popen([*cmd, "--keep-going", "--retries", "0"], stdout=log.open("w"),
                             stderr=subprocess.STDOUT, env=slurm_env)
    cancelled = None
    while first.poll() is None and time.time() - started < 600:
        job = next((j for j in slurm_jobs(slurm_env, 0) if j["rule"] == "train_fold" and j["fold"] == 1
                    and j["JobState"] == "RUNNING" and j["WorkDir"] == str(tmp_path)), None)
        if job and checkpoint.exists():  # at least one epoch saved: the rerun has something to resume
            subprocess.run(["scancel", job["JobId"]], check=True, env=slurm_env)
            cancelled = job["JobId"]
            break
        time.sleep(0.5)
    first.wait(timeout=600)
    output = log.read_text()
    print(f"\nTIMING SLURM --keep-going with fold 1 cancelled: {time.time() - started:.0f} s")
    assert cancelled, f"fold 1 was never seen running with a checkpoint:\n{output[-3000:]}"
    assert first.returncode != 0 and f"SLURM-job '{cancelled}' failed" in output, output[-3000:]
    assert (tmp_path / targets[0]).is_file() and not (tmp_path / targets[1]).exists()
    fold0_mtime = (tmp_path / targets[0]).stat().st_mtime

    before, started = last_job_id(slurm_env), time.time()
    run(cmd, slurm_env)
    print(f"TIMING SLURM plain rerun of the failed fold: {time.time() - started:.0f} s")
    resubmitted = [(job["rule"], job["fold"], job["JobState"]) for job in slurm_jobs(slurm_env, before)]
    assert resubmitted == [("train_fold", 1, "COMPLETED")], resubmitted
    assert (tmp_path / targets[0]).stat().st_mtime == fold0_mtime, "fold 0 must not run again"
    resumed = read_run(tmp_path, "train", 1)["resumed_from_epoch"]
    print(f"fold 1 resumed from epoch {resumed}")
    assert resumed >= 1
    assert pd.read_parquet(tmp_path / "results/train/fold1/history.parquet")["epoch"].tolist() == list(range(epochs))


@pytest.mark.slow  # the suite's time on a 2-core AVX2-only CPU: docs/measured.md#demo-and-test-suite-timings
@pytest.mark.snakemake
def test_a_sweep_sends_its_runs_jobs_to_slurm_side_by_side(tmp_path, slurm_env):
    """A sweep with the tracked profile as its runs' run_args: each run's GPU jobs are SLURM jobs, two runs
    at once (parallel_runs), and the leaderboard follows."""
    from conftest import TINY_CONFIG

    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({**TINY_CONFIG, "checkpoint_minutes": 5}))
    exp = tmp_path / "slurm_sweep.yaml"
    exp.write_text(yaml.safe_dump({"base": str(tmp_path / "tiny.yaml"), "data_dir": "demo", "seeds": [1],
                                   "proxy": {"folds": {"run": [1]}, "fold_threads": 1},
                                   "vary": {"train.lr": [3e-3]}}))
    before = last_job_id(slurm_env)
    run_args = " ".join([f"--profile {PROFILE.parent} --slurm-status-command squeue",
                         "--slurm-init-seconds-before-status-checks 5", *SMALL_JOBS])
    run([str(SNAKEMAKE), "-s", str(REPO / "workflow/sweep.smk"), "--directory", str(tmp_path), "--cores", "2",
         "--config", f"experiment={exp}", "parallel_runs=2", f"run_args={run_args}"], slurm_env, timeout=900)
    jobs = slurm_jobs(slurm_env, before)
    assert sorted(job["rule"] for job in jobs) == sorted(["train_fold", "finetune_fold", "predict_fold"] * 2)
    assert all(job["Account"] == "saltnet" and job["Partition"] == "gpu" for job in jobs)
    folders = {Path(job["WorkDir"]).relative_to(tmp_path / "runs/slurm_sweep").as_posix() for job in jobs}
    assert folders == {"base/seed1", "train.lr-0.003/seed1"}
    # the runs side by side: each run's snakemake (start, start + wall) from its sweep history
    history = [json.loads(line) for folder in folders
               for line in (tmp_path / "runs/slurm_sweep" / folder / "sweep_history.jsonl").read_text().splitlines()]
    spans = sorted((entry["start"], entry["start"] + entry["wall_s"]) for entry in history)
    assert spans[1][0] < spans[0][1], f"the two runs did not overlap: {spans}"
    assert len(pd.read_csv(tmp_path / "runs/slurm_sweep/leaderboard.csv")) == 2
