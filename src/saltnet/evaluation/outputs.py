"""Where a run's analyses go (the rules of workflow/rules/analysis.smk): one list for the pipeline, an
experiment file's `analyses` key and a sweep's run outputs. Imports nothing: the Snakefiles read it."""

from __future__ import annotations

__all__ = ["CHEAP_ANALYSES", "COSTLY_ANALYSES", "analysis_path"]

CHEAP_ANALYSES = ("postprocess", "losses")  # seconds, no model run: in rule all
COSTLY_ANALYSES = ("tta", "snapshots")  # the out-of-fold images predicted again: targets of their own


def analysis_path(name: str) -> str:
    """results/analysis/<name>.json, relative to the run's folder."""
    return f"results/analysis/{name}.json"
