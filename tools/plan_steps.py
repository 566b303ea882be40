"""Does plan_budget's measurement of a step depend on how many rounds it times or on the stages it
interleaves? The step seconds of the CPU preset's stages as plan_budget measures them
(saltnet.performance.budget.measure_steps: two 1-thread processes side by side, the slowest kept), with
three stages (train, finetune, pseudo) and two, at 40 and 10 timed rounds.

    PYTHONPATH=src .venv/bin/python tools/plan_steps.py [--no-bf16]

Prints one JSON row per configuration: the stages, the rounds, the wall seconds and each step's median.
Compare with the run's results/budget.json (stages[*].step_seconds) and its real epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from saltnet.config.resolve import PRESETS, resolve_config
from saltnet.performance.budget import measure_steps

AUX = {"aux_weight": 0.3, "aux_resolution": "output"}  # the CPU preset's deep supervision
STAGES = [{"stage": "train", "loss": "bce_dice"}, {"stage": "finetune", "loss": "symmetric_lovasz"},
          {"stage": "pseudo", "loss": "symmetric_lovasz"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", help="time fp32 steps (default: bf16)")
    args = parser.parse_args()
    augment = resolve_config([PRESETS / "cpu.yaml"])["augment"]  # timed with the step, as plan_budget does
    stages = [{**s, "size": 128, "batch_size": 16, **AUX, "augment": augment} for s in STAGES]
    for n_stages, steps in ((3, 40), (2, 40), (3, 10), (2, 10)):
        start, load = time.time(), os.getloadavg()[0]  # when each measurement began, and the CPU's load then
        seconds = measure_steps("resunet_scse_ds", stages[:n_stages], native=101, processes=2, threads=1,
                                bf16=args.bf16, predict_batch_size=64, steps=steps)
        print(json.dumps({"stages": n_stages, "steps": steps, "started": round(start, 1),
                          "load_avg_1m": round(load, 2), "wall_s": round(time.time() - start, 1),
                          **{k: round(v, 4) for k, v in seconds.items()}}), flush=True)


if __name__ == "__main__":
    main()
