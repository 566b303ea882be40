"""The memory allocator of a training or prediction job: jemalloc where it measurably helps.

glibc malloc spent up to 40% of CPU training time in page faults on one machine, where jemalloc
(Debian package libjemalloc2) made the DynamicUnet train 1.8-2x faster; on a 2-core AVX2 EPYC it
made the small U-Net 10-25% slower. So the choice is measured: with config `allocator: auto`
(the default) the first job on a machine times a few training steps of the job's model, size and batch size
under each allocator, in two short subprocesses (saltnet.allocator_probe), and caches the answer per
machine (host, CPU model, ISA, torch version) and workload in ~/.cache/saltnet/allocator.json. `jemalloc` or `system` force it, and so does the
environment variable SALTNET_JEMALLOC=1/0, which wins over the config.

An allocator is chosen before the process starts, hence a re-exec with LD_PRELOAD. This module
imports no torch at import time, so it costs nothing before the heavy imports.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["JEMALLOC_PATHS", "cpu_field", "choose_allocator", "preload_allocator", "allocator_in_use"]

JEMALLOC_PATHS = (
    "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
    "/usr/lib64/libjemalloc.so.2",
)
_REASON_ENV = "SALTNET_ALLOCATOR_REASON"  # carries the choice's reason across the re-exec, for the log
_MIN_GAIN = 1.10  # jemalloc must be clearly faster to be worth a re-exec
DEFAULT_WORKLOAD = ("resunet_scse", 128, 16)  # (model, size, batch size) the probe trains


def jemalloc_path() -> str | None:
    return next((p for p in JEMALLOC_PATHS if os.path.exists(p)), None)


def allocator_in_use() -> str:
    """'jemalloc' if this process runs under it, else 'system'."""
    if "jemalloc" in os.environ.get("LD_PRELOAD", ""):
        return "jemalloc"
    try:
        return "jemalloc" if "jemalloc" in Path("/proc/self/maps").read_text() else "system"
    except OSError:
        return "system"


def cpu_field(name: str, default: str = "") -> str:
    """A field of /proc/cpuinfo ('model name', 'flags'); `default` where there is none (imports no torch)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return default
    return next((line.split(":", 1)[1].strip() for line in lines if line.split(":", 1)[0].strip() == name), default)


def _machine_key() -> str:
    from importlib import metadata

    model, flags = cpu_field("model name", platform.processor()), cpu_field("flags").split()
    isa = "amx" if "amx_bf16" in flags else "avx512" if "avx512f" in flags else "avx2"
    isa = os.environ.get("ATEN_CPU_CAPABILITY") or os.environ.get("ONEDNN_MAX_CPU_ISA") or isa
    return f"{platform.node()}|{model}|{isa}|{os.cpu_count()} cpus|torch {metadata.version('torch')}"


def _probe(preload: str | None, workload: tuple[str, int, int]) -> float:
    """Training images per second of a small U-Net in a fresh process (with `preload` as LD_PRELOAD)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if preload:
        env["LD_PRELOAD"] = preload
    out = subprocess.run([sys.executable, "-m", "saltnet.allocator_probe", *map(str, workload)], env=env, capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"allocator probe failed: {out.stderr[-500:]}")
    return float(out.stdout.strip().splitlines()[-1])


def _read_cache(cache: Path) -> dict:
    try:
        return json.loads(cache.read_text()) if cache.is_file() else {}
    except (OSError, ValueError):  # unreadable or half-written by hand: measure again
        return {}


def _has_gpu() -> bool:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    return os.path.exists("/dev/nvidia0") or visible not in ("", "-1")


def _measured_choice(path: str, cache: Path, workload: tuple[str, int, int]) -> tuple[bool, str]:
    """Cached per machine and workload; measured once (under a lock, so two jobs never probe at once)."""
    key = "|".join([_machine_key(), *map(str, workload)])
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.with_suffix(".lock"), "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
        except OSError:  # some shared filesystems refuse locks: probe unlocked
            pass
        known = _read_cache(cache)
        if key not in known:
            system, jemalloc = _probe(None, workload), _probe(path, workload)
            known[key] = {"system_img_per_s": system, "jemalloc_img_per_s": jemalloc, "measured": time.time()}
            tmp = cache.with_suffix(".tmp")
            tmp.write_text(json.dumps(known, indent=1))
            tmp.replace(cache)
    entry = known[key]
    ratio = entry["jemalloc_img_per_s"] / entry["system_img_per_s"]
    chosen = ratio >= _MIN_GAIN
    return chosen, (f"auto: jemalloc {ratio:.2f}x the training speed of the system allocator on this machine "
                    f"(measured once, cached in {cache})")


def choose_allocator(setting: str = "auto", workload: tuple[str, int, int] = DEFAULT_WORKLOAD,
                     cache: Path | None = None) -> tuple[bool, str]:
    """(use jemalloc, reason) for config `allocator` ('auto' | 'jemalloc' | 'system') and SALTNET_JEMALLOC.

    workload: (model, size, batch size) that the probe trains for a few steps under each allocator.
    """
    env = os.environ.get("SALTNET_JEMALLOC")
    if env in ("0", "1"):
        setting, origin = ("jemalloc" if env == "1" else "system"), f"SALTNET_JEMALLOC={env}"
    else:
        origin = f"config allocator: {setting}"
    path = jemalloc_path()
    if setting == "system":
        return False, origin
    if path is None:
        return False, f"{origin}, but jemalloc is not installed (Debian: apt-get install libjemalloc2)"
    if setting == "jemalloc":
        return True, origin
    if setting != "auto":
        raise ValueError(f"config key allocator: expected auto, jemalloc or system, got {setting!r}")
    if _has_gpu():
        return False, f"{origin}: a GPU machine (the GPU computes; no CPU probe in a GPU job)"
    cache = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "saltnet/allocator.json"
    try:
        return _measured_choice(path, cache, tuple(workload))
    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
        return False, (f"{origin}: the probe failed ({str(err)[-300:]}), so the system allocator; "
                       f"set allocator: system (or SALTNET_JEMALLOC=0) to skip the probe")


def preload_allocator(setting: str = "auto", workload: tuple[str, int, int] = DEFAULT_WORKLOAD) -> str:
    """Re-exec this Python process under the chosen allocator if needed; returns the choice's reason
    (in the re-executed process too), for the job's log once logging is set up."""
    if _REASON_ENV in os.environ:  # already chosen (we are the re-executed process, or its parent chose)
        return os.environ[_REASON_ENV]
    use, reason = choose_allocator(setting, workload)
    os.environ[_REASON_ENV] = f"{'jemalloc' if use else 'system'} ({reason})"
    if not use or "jemalloc" in os.environ.get("LD_PRELOAD", "") or not sys.argv or not os.path.exists(sys.argv[0]):
        return os.environ[_REASON_ENV]
    env = {**os.environ, "LD_PRELOAD": f"{jemalloc_path()} {os.environ.get('LD_PRELOAD', '')}".strip()}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], env)
