"""Which device a job computes on, and a per-GPU lease so concurrent jobs never share a GPU.

Snakemake's `--resources gpu=N` caps how many GPU jobs run at once but never says which GPU each
gets. Each GPU job therefore takes an exclusive lock file per GPU (fcntl.flock: released by the
kernel when the process ends, also on a crash) and computes on the GPU it holds. Where a scheduler
(SLURM) has already set CUDA_VISIBLE_DEVICES for the job, that choice is respected and no lock is
taken.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

__all__ = ["Lease", "device_lease"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lease:
    """device: where to compute; slot: the GPU index held (None: no lease); source: why."""

    device: torch.device
    slot: int | None
    source: str


def _try_lock(path: Path):
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return handle
    except BlockingIOError:
        handle.close()
        return None


@contextlib.contextmanager
def device_lease(lock_dir: str | Path, n_slots: int | None = None, poll_s: float = 0.5) -> Iterator[Lease]:
    """Hold one GPU (or one of `n_slots` device slots) for the duration of the block.

    n_slots: how many GPUs to share out; default torch.cuda.device_count(). With none, the job
    runs on the CPU without a lease.
    """
    cuda = torch.cuda.is_available()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if os.environ.get("SLURM_JOB_ID") and visible:
        # SLURM chose the GPU: never take local locks (a shared lock folder would couple nodes).
        if not cuda:
            log.warning("SLURM assigned GPU(s) %s but torch sees no CUDA device: computing on the CPU", visible)
        device = torch.device("cuda", 0) if cuda else torch.device("cpu")
        yield Lease(device, None, f"scheduler (CUDA_VISIBLE_DEVICES={visible})")
        return
    n_slots = torch.cuda.device_count() if n_slots is None else n_slots
    if n_slots <= 0:
        yield Lease(torch.device("cuda", 0) if cuda else torch.device("cpu"), None, "no GPU lease")
        return
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    while True:
        for slot in range(n_slots):
            handle = _try_lock(lock_dir / f"gpu{slot}.lock")
            if handle is not None:
                log.info("holding GPU slot %d (lock %s)", slot, lock_dir / f"gpu{slot}.lock")
                try:
                    device = torch.device("cuda", slot) if cuda else torch.device("cpu")
                    yield Lease(device, slot, "lock file")
                finally:
                    handle.close()
                return
        time.sleep(poll_s)
