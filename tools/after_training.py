"""How long does a budgeted run take after its last training fold, beyond the predictions its last replan
counted? What RESERVE_SECONDS (saltnet.performance.budget) must cover.

    .venv/bin/python tools/after_training.py docs/data/runs/cpu-preset-avx512bf16-31c9e53:5094.8 ...

Each argument: a run's records folder (budget.json, budget_{stage}.json, {stage}_fold{k}.json run records,
labels_fold{k}.json) and, after a colon, the run's end in seconds after plan_budget began (its
run_end.json where it has one). Prints one JSON row per run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from saltnet.performance.budget import labelled_predict_seconds


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def replan_predictions(folder: Path, plan: dict) -> float:
    """The prediction seconds the last stage's replan counted (as saltnet.steps.replan_step computes them)."""
    last = plan["stages"][-1]["stage"]
    replan = _read(folder / f"budget_{last}.json")
    if "predict_seconds" in replan:
        return replan["predict_seconds"]
    labels = [_read(path) for path in sorted(folder.glob("labels_fold*.json"))]
    if last == "pseudo" and labels:
        return labelled_predict_seconds(plan, labels)
    return replan["speed_ratio"] * plan["predict_seconds"]


def main(args: list[str]) -> None:
    for arg in args:
        where, _, end = arg.rpartition(":")
        folder = Path(where)
        plan = _read(folder / "budget.json")
        runs = [_read(path) for path in folder.glob("*_fold*.json") if not path.name.startswith("labels")]
        after = float(end) - (max(run["end"] for run in runs) - plan["started"])
        predict = replan_predictions(folder, plan)
        print(json.dumps({"run": folder.name, "after_training_s": round(after, 1), "predictions_s": round(predict, 1),
                          "beyond_s": round(after - predict, 1), "reserve_s": plan["reserve_seconds"]}))


if __name__ == "__main__":
    main(sys.argv[1:])
