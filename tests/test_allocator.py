"""The allocator is a measured choice: probed once per machine and workload, cached, switchable off."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from saltnet import allocator

TINY = ("resunet_scse", 32, 2)


def test_system_and_the_environment_switch_never_preload(monkeypatch):
    monkeypatch.setattr(allocator, "jemalloc_path", lambda: "/usr/lib/libjemalloc.so.2")
    assert allocator.choose_allocator("system") == (False, "config allocator: system")
    monkeypatch.setenv("SALTNET_JEMALLOC", "0")
    assert allocator.choose_allocator("jemalloc") == (False, "SALTNET_JEMALLOC=0")


def test_not_installed_says_how_to_install(monkeypatch):
    monkeypatch.delenv("SALTNET_JEMALLOC", raising=False)
    monkeypatch.setattr(allocator, "jemalloc_path", lambda: None)
    use, reason = allocator.choose_allocator("auto")
    assert not use and "apt-get install libjemalloc2" in reason


def test_unknown_setting_is_refused(monkeypatch):
    monkeypatch.delenv("SALTNET_JEMALLOC", raising=False)
    monkeypatch.setattr(allocator, "jemalloc_path", lambda: "/usr/lib/libjemalloc.so.2")
    with pytest.raises(ValueError, match="allocator"):
        allocator.choose_allocator("tcmalloc")


@pytest.mark.skipif(allocator.jemalloc_path() is None, reason="libjemalloc2 is not installed")
def test_auto_measures_once_then_reads_the_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("SALTNET_JEMALLOC", raising=False)
    cache = tmp_path / "allocator.json"
    use, reason = allocator.choose_allocator("auto", TINY, cache=cache)
    entry = next(iter(json.loads(cache.read_text()).values()))
    ratio = entry["jemalloc_img_per_s"] / entry["system_img_per_s"]
    assert use is (ratio >= 1.10) and f"{ratio:.2f}x" in reason
    monkeypatch.setattr(allocator, "_probe", lambda *args: pytest.fail("probed again despite the cache"))
    assert allocator.choose_allocator("auto", TINY, cache=cache) == (use, reason)


@pytest.mark.skipif(allocator.jemalloc_path() is None, reason="libjemalloc2 is not installed")
def test_a_forced_jemalloc_job_really_runs_under_it(tmp_path):
    """preload_allocator re-executes the script with LD_PRELOAD; the new process reports jemalloc."""
    script = tmp_path / "job.py"
    script.write_text("from saltnet.allocator import preload_allocator, allocator_in_use\n"
                      "reason = preload_allocator('jemalloc')\nprint(allocator_in_use(), '|', reason)\n")
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("LD_PRELOAD", "SALTNET_JEMALLOC")}
    env.pop("SALTNET_ALLOCATOR_REASON", None)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "jemalloc | jemalloc (config allocator: jemalloc)"
