"""One GPU per job on a GPU box: the per-GPU lock lease, alone and under the real DAG.

Without CUDA here, `gpu_slots: 2` makes device_lease share out two slots exactly as it would two GPUs.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time

import pytest

from conftest import run_snakemake, write_config
from saltnet.runtime.device import device_lease


@pytest.fixture
def no_scheduler(monkeypatch):
    """A lease outside SLURM (the suite may itself run inside a SLURM job)."""
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_two_leases_get_two_slots_and_a_third_waits_for_a_release(tmp_path, no_scheduler):
    got = {}

    def third():
        with device_lease(tmp_path, n_slots=2, poll_s=0.05) as lease:
            got["slot"] = lease.slot

    with device_lease(tmp_path, n_slots=2) as first:
        with device_lease(tmp_path, n_slots=2) as second:
            assert {first.slot, second.slot} == {0, 1}
            assert first.source == second.source == "lock file"
            waiter = threading.Thread(target=third, daemon=True)
            waiter.start()
            waiter.join(timeout=0.5)
            assert waiter.is_alive() and not got, "a third lease must wait while both slots are held"
        waiter.join(timeout=5)  # `second` is released: the third lease must take its slot
        assert not waiter.is_alive(), "the third lease did not get the released slot within 5 s"
        assert got["slot"] == second.slot != first.slot


def test_slurm_assignment_is_respected_without_locks(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    with device_lease(tmp_path / "locks", n_slots=2) as lease:
        assert lease.slot is None and lease.source == "scheduler (CUDA_VISIBLE_DEVICES=1)"
    assert not (tmp_path / "locks").exists(), "no lock files when SLURM chose the GPU"


@pytest.mark.snakemake
def test_dag_jobs_skip_a_held_slot_and_wait_for_the_free_one(tmp_path):
    """2 folds, 2 GPU slots, slot 0 held by another experiment (this test), 2 jobs at a time: both
    folds take slot 1, and never at once (the second waits for it), whatever the start-up jitter.

    (That two leases get two different slots is the first test's, without the DAG's timing.)
    """
    write_config(tmp_path, gpu_slots=2)
    tmp = tmp_path / "tmp"  # the DAG's lock folder is under the temp dir: this test's own, not the machine's
    tmp.mkdir()
    runs = [f"results/train/fold{k}/run.json" for k in range(2)]
    env = {"SLURM_JOB_ID": "", "CUDA_VISIBLE_DEVICES": "", "TMPDIR": str(tmp)}
    lock_dir = tmp / f"saltnet-gpu-locks-{os.getuid()}"
    with device_lease(lock_dir, n_slots=2) as held:
        assert held.slot == 0
        started = time.time()
        # One thread per job so that two run at once on 2 cores (the rule asks for 8, capped at --cores).
        run_snakemake(tmp_path, *runs, "--resources", "gpu=2", "--set-threads", "train_fold=1", env=env)
        print(f"\nTIMING gpu-lease DAG, 2 folds on 1 free slot of 2: {time.time() - started:.0f} s")
    jobs = [json.loads((tmp_path / run).read_text()) for run in runs]
    assert [(job["lease"], job["gpu_slot"]) for job in jobs] == [("lock file", 1)] * 2, jobs
    overlapping = [(a["fold"], b["fold"]) for a, b in itertools.combinations(jobs, 2)
                   if a["start"] < b["end"] and b["start"] < a["end"]]
    assert not overlapping, f"folds held slot 1 at the same time: {overlapping}"
