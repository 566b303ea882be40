"""When the `snakemake` process itself is killed (SIGKILL: no handler runs), two things stay behind that
would stop the same command from simply running again: its jobs, which go on as orphans and would
write the same checkpoints as the next run's, and its lock files in .snakemake/locks, which make the
next run refuse to start. Here:

- `watch_snakemake()` (each job, from setup_logging): a daemon thread that ends the job when the
  snakemake that started it is gone; the fold resumes from its last checkpoint in the next run.
- `claim_workdir()` (the Snakefile, in the snakemake that runs the workflow): records this process in
  .snakemake/saltnet-pids/, and where every snakemake recorded there is gone, removes the locks they
  left. Snakemake's own `--unlock` does the same by hand.
Linux only (/proc); elsewhere both do nothing.
"""

from __future__ import annotations

import atexit
import logging
import os
import platform
import sys
import threading
import time
from pathlib import Path

__all__ = ["snakemake_ancestor", "watch_snakemake", "claim_workdir"]

log = logging.getLogger(__name__)
PIDS = Path(".snakemake/saltnet-pids")
LOCKS = Path(".snakemake/locks")


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state, past the command's parentheses


def _is_snakemake(cmdline: list[str]) -> bool:
    """`snakemake ...`, `python -m snakemake ...` or `python .../snakemake/__main__.py ...` (not a job's
    script, whose path holds .snakemake/scripts/)."""
    return any(arg == "snakemake" or arg.endswith("/snakemake") or arg.endswith("snakemake/__main__.py")
               for arg in cmdline[:3])


def snakemake_ancestor(pid: int | None = None) -> int | None:
    """The nearest process above `pid` (default: this one) that is a snakemake, or None."""
    pid = _parent(pid or os.getpid())
    while pid > 1:
        if _is_snakemake(_cmdline(pid)):
            return pid
        pid = _parent(pid)
    return None


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22): with the pid, it
    names one process even where pids are reused."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(pid: int, started: str | None = None) -> bool:
    return _is_snakemake(_cmdline(pid)) and (started is None or _start_time(pid) == started)


_watching: dict[str, int] = {}


def watch_snakemake(period_s: float | None = None) -> int | None:
    """End this job (exit 3) soon after the snakemake above it is gone (checked every `period_s`, default
    $SALTNET_WATCH_PERIOD_S or 2 s); returns that snakemake's pid."""
    period_s = period_s or float(os.environ.get("SALTNET_WATCH_PERIOD_S", 2.0))
    owner = snakemake_ancestor()
    if owner is None or _watching.get("pid") == owner:  # none, or already watched by this process
        return owner
    _watching["pid"] = owner
    started = _start_time(owner)

    def watch() -> None:
        while _alive(owner, started):
            time.sleep(period_s)
        log.error("snakemake (pid %d) is gone: this job stops; the same command resumes from its last checkpoint",
                  owner)
        logging.shutdown()
        os._exit(3)

    threading.Thread(target=watch, name="watch-snakemake", daemon=True).start()
    return owner


def claim_workdir(workdir: str | Path = ".", note: bool = True) -> list[int]:
    """Record this snakemake (host, pid, start time) in <workdir>/.snakemake/saltnet-pids/ (removed at
    exit); drop the records of snakemakes of this host that are gone, and where no record is left (none
    alive here, none of another host, whose processes cannot be seen), the lock files of
    .snakemake/locks: a live snakemake's locks are never touched. Returns the gone pids whose locks were
    removed."""
    folder, locks = Path(workdir) / PIDS, Path(workdir) / LOCKS
    if not Path("/proc/self").exists():
        return []
    host = platform.node()
    gone, kept = [], 0
    for record in folder.glob("*") if folder.is_dir() else []:
        fields = record.read_text().split() if record.is_file() else []
        # gone: no process of that pid started at that time (whatever its command line: an API caller counts)
        if len(fields) == 3 and fields[0] == host and fields[1].isdigit() and _start_time(int(fields[1])) != fields[2]:
            gone.append(int(fields[1]))
            record.unlink(missing_ok=True)
        else:
            kept += 1  # alive, of another host, or not ours to judge
    removed = []
    if gone and not kept and locks.is_dir():
        for lock in locks.glob("*.lock"):
            lock.unlink(missing_ok=True)
            removed = gone
    folder.mkdir(parents=True, exist_ok=True)
    mine = folder / f"{host}-{os.getpid()}"
    mine.write_text(f"{host} {os.getpid()} {_start_time(os.getpid())}\n")
    atexit.register(mine.unlink, missing_ok=True)
    for pid in removed if note else ():
        print(f"Note: removed the locks left by snakemake pid {pid}, which is gone", file=sys.stderr)
    return removed
