"""Process set-up shared by the rule scripts: logging, threads, provenance."""

from __future__ import annotations

import logging
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

__all__ = ["setup_logging", "set_threads", "provenance"]

_PACKAGES = ["saltnet", "torch", "torchvision", "fastai", "pretrainedmodels", "numpy", "pandas", "pyarrow",
             "snakemake"]


def setup_logging(log_file: str | Path | None = None) -> None:
    """Log INFO and above to stderr and, if given, to `log_file` (its folder is created)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)
    sys.excepthook = _log_uncaught


def _log_uncaught(exc_type, exc, tb) -> None:
    """Put the error that ends a job into its log too, with the traceback; the message comes last."""
    logging.getLogger("saltnet").critical("job failed", exc_info=(exc_type, exc, tb))


def set_threads(n: int) -> None:
    """Use `n` CPU threads for torch's intra-op work (Snakemake's `threads`)."""
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
    """Package versions, Python, platform and the git commit of `repo` (None outside git)."""
    return {
        "packages": {name: _version(name) for name in _PACKAGES},
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git_commit": _git_commit(Path(repo)),
        "cuda_available": torch.cuda.is_available(),
    }
