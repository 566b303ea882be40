"""One GPU per job on a GPU box: the per-GPU lock lease, alone and under the real DAG.

Without CUDA here, `gpu_slots: 2` makes device_lease share out two slots exactly as it would two GPUs.
"""

from __future__ import annotations

import itertools
import json
import threading
import time

import pytest

from conftest import run_snakemake, write_config
from saltnet.device import device_lease


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


def test_dag_gives_concurrent_folds_different_slots(tmp_path):
    """4 folds, 2 GPU slots, 2 concurrent jobs: every job holds slot 0 or 1, overlapping jobs never the same."""
    write_config(tmp_path, folds={"n": 4, "seed": 42}, gpu_slots=2)
    runs = [f"results/train/fold{k}/run.json" for k in range(4)]
    started = time.time()
    # One thread per job so that two fit on 2 cores at once (the rule asks for 8, capped at --cores).
    run_snakemake(tmp_path, *runs, "--resources", "gpu=2", "--set-threads", "train_fold=1",
                  env={"SLURM_JOB_ID": "", "CUDA_VISIBLE_DEVICES": ""})
    print(f"\nTIMING gpu-lease DAG, 4 folds on 2 slots: {time.time() - started:.0f} s")
    jobs = [json.loads((tmp_path / run).read_text()) for run in runs]
    assert all(job["lease"] == "lock file" and job["gpu_slot"] in {0, 1} for job in jobs), jobs
    overlapping = [(a, b) for a, b in itertools.combinations(jobs, 2)
                   if a["start"] < b["end"] and b["start"] < a["end"]]
    assert overlapping, "no two folds ran at the same time: the test shows nothing"
    for a, b in overlapping:
        assert a["gpu_slot"] != b["gpu_slot"], f"folds {a['fold']} and {b['fold']} overlapped on slot {a['gpu_slot']}"
