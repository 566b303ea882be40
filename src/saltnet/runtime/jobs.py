"""Process set-up shared by the rule scripts: logging, threads, provenance."""

from __future__ import annotations

import atexit
import logging
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from saltnet.runtime.atomic import DiskFullError
from saltnet.runtime.orphans import watch_snakemake

__all__ = ["setup_logging", "set_threads", "provenance", "cpu_field", "machine"]

_PACKAGES = ["saltnet", "torch", "torchvision", "fastai", "pretrainedmodels", "numpy", "pandas", "pyarrow",
             "snakemake"]


_ATTEMPT = "===== attempt "  # starts the header line of every attempt of a job in its log
_FINISHED = "job finished"  # logged at exit by a job that raised no error
_state = {"failed": False, "at_exit": False}


def setup_logging(log_file: str | Path | None = None) -> None:
    """Log INFO and above to stderr and, if given, to `log_file` (its folder is created), under a header
    line naming the attempt, the time and the host.

    A job that runs again after an attempt that did not finish (a Snakemake retry, a rerun after a
    failure or a kill) appends to the earlier attempts' log; a job whose last attempt finished starts a
    new log. Snakemake deletes a job's log before every attempt, so the log has a second name that it
    does not touch: `.<name>.attempts` beside it (a hard link, or a copy where links are not supported).
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    attempt, earlier = 1, ""
    _state["log_file"] = str(log_file) if log_file else None
    if log_file:
        earlier = _unfinished_attempts(_kept_path(Path(log_file)))
        attempt = earlier.count(_ATTEMPT) + 1
        handlers += _log_file_handlers(Path(log_file), earlier)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)
    sys.excepthook = _log_uncaught
    watch_snakemake()  # a job whose snakemake was killed stops, so that the next run resumes it alone
    if not _state["at_exit"]:
        atexit.register(_log_finished)
        _state["at_exit"] = True
    if log_file:
        after = " (the attempt before did not finish: it failed or was killed)" if attempt > 1 else ""
        logging.getLogger(__name__).info("%s%d%s, host %s, pid %d =====", _ATTEMPT, attempt, after,
                                         platform.node(), os.getpid())


def _kept_path(log_file: Path) -> Path:
    return log_file.with_name(f".{log_file.name}.attempts")


def _unfinished_attempts(kept: Path) -> str:
    """The earlier attempts' log if the last of them did not finish, else ''."""
    try:
        text = kept.read_text(errors="replace")
    except OSError:
        return ""
    return "" if _FINISHED in text.rsplit(_ATTEMPT, 1)[-1] else text


def _log_file_handlers(log_file: Path, earlier: str) -> list[logging.Handler]:
    """Handlers that append to `log_file`, made to hold `earlier` first, and keep it under its second name."""
    kept = _kept_path(log_file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    if not earlier:
        kept.unlink(missing_ok=True)
    if kept.exists() and log_file.exists() and os.path.samefile(kept, log_file):
        return [logging.FileHandler(log_file, mode="a")]  # already one file: continue it
    log_file.write_text(earlier)
    kept.unlink(missing_ok=True)
    try:
        os.link(log_file, kept)
    except OSError:  # no hard links on this file system: write both
        kept.write_text(earlier)
        return [logging.FileHandler(log_file, mode="a"), logging.FileHandler(kept, mode="a")]
    return [logging.FileHandler(log_file, mode="a")]


# Errors a user causes (a bad file, folder or value): their message names what to change, so the terminal
# gets that message alone; the traceback still goes to the job's log file.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
               DiskFullError)


def _log_uncaught(exc_type, exc, tb) -> None:
    """Put the error that ends a job into its log, with the traceback; on the terminal a user's error is
    one line, 'Error: <message>' (then where the log is), and any other error the full traceback."""
    _state["failed"] = True
    short = issubclass(exc_type, USER_ERRORS)
    record = logging.getLogger("saltnet").makeRecord("saltnet", logging.CRITICAL, __file__, 0, "job failed", (),
                                                     (exc_type, exc, tb))
    for handler in logging.getLogger().handlers:
        if short and not isinstance(handler, logging.FileHandler):
            continue  # the terminal: the message alone, below
        handler.handle(record)
    if short:
        where = f" (traceback: {_state['log_file']})" if _state.get("log_file") else ""
        print(f"Error: {exc}{where}", file=sys.stderr, flush=True)


def _log_finished() -> None:
    """At exit: mark the attempt finished, so that the job's next run starts a new log."""
    if not _state["failed"]:
        logging.getLogger(__name__).info(_FINISHED)


def set_threads(n: int) -> None:
    """Use `n` CPU threads for torch's intra-op work (Snakemake's `threads`)."""
    import torch  # here, not at the top: the report rules log through this module and never need torch

    torch.set_num_threads(max(1, int(n)))


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git_commit(repo: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() + ("-dirty" if dirty else "")) if out.returncode == 0 else None


def provenance(repo: str | Path = ".") -> dict:
    """Package versions, Python, platform and the git commit of `repo` (None outside git); whether CUDA is
    available where torch is installed (the light rules' env has no torch: None there)."""
    import importlib.util

    cuda = None
    if importlib.util.find_spec("torch") is not None:
        import torch

        cuda = torch.cuda.is_available()
    return {
        "packages": {name: _version(name) for name in _PACKAGES},
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git_commit": _git_commit(Path(repo)),
        "cuda_available": cuda,
        "machine": machine(),
    }


def cpu_field(name: str, default: str = "") -> str:
    """A field of /proc/cpuinfo ('model name', 'flags'); `default` where there is none (imports no torch)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return default
    return next((line.split(":", 1)[1].strip() for line in lines if line.split(":", 1)[0].strip() == name), default)


def machine() -> dict:
    """The CPU this process runs on: its model name, the widest vector ISA its flags name (AMX, AVX-512,
    AVX2; what bf16 speed depends on), its core count; and the GPU's name where torch sees one (else None)."""
    model = cpu_field("model name") or platform.processor() or platform.machine()
    flags = set(cpu_field("flags").split())
    isa = next((name for flag, name in (("amx_bf16", "AMX"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))
                if flag in flags), None)
    gpu = None
    if "torch" in sys.modules:  # only where the job already imported it: the light rules have no torch
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": model, "isa": isa, "cores": os.cpu_count(), "gpu": gpu}
