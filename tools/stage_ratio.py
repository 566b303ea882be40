"""How steady is the cost ratio of a finetune (symmetric Lovász) step to a first-stage (BCE + Dice) step,
the ratio rule replan multiplies the first stage's real epoch by to predict the last stage's?

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python tools/stage_ratio.py --steps 10 40 --pairs 2

Each pair is two processes side by side, one thread each (as the CPU preset's folds train), each timing
both stages' steps interleaved as plan_budget does (saltnet.performance.budget._time_interleaved), with
random targets and with a batch of real masks (`--masks`: a run's results/packed/train.npz). Prints one
JSON row per process: the medians and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np


def measure(steps: int, seed: int, masks_path: str | None, bf16: bool) -> dict:
    import torch

    from saltnet.config.resolve import PRESETS, resolve_config
    from saltnet.data.augment import AugmentSettings
    from saltnet.data.pack import load_packed
    from saltnet.models import build_model, get_model_spec
    from saltnet.performance.bench import make_train_step
    from saltnet.performance.budget import _time_interleaved

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    targets = {"random": (torch.rand(16, 1, 101, 101) > 0.5).float()}
    if masks_path:
        masks = load_packed(masks_path).masks
        rows = np.random.default_rng(seed).choice(len(masks), 16, replace=False)
        targets["real"] = torch.from_numpy(masks[rows][:, None].astype(np.float32))
    side = get_model_spec("resunet_scse_ds").input_size(128, 101)
    x = torch.randn(16, 3, side, side).contiguous(memory_format=torch.channels_last)
    augment = AugmentSettings(**resolve_config([PRESETS / "cpu.yaml"])["augment"])  # as plan_budget times it
    fns = {}
    for name, target in targets.items():
        for stage, loss in (("train", "bce_dice"), ("finetune", "symmetric_lovasz")):
            model = build_model("resunet_scse_ds", "none", 128).to(memory_format=torch.channels_last).train()
            fns[f"{stage}_{name}"] = make_train_step(model, x, target, bf16, loss=loss, aux_weight=0.3,
                                                     aux_resolution="output", augment=augment)
    medians = _time_interleaved(fns, steps)
    return {"steps": steps, "seed": seed, **{k: round(v, 4) for k, v in medians.items()},
            **{f"ratio_{n}": round(medians[f"finetune_{n}"] / medians[f"train_{n}"], 3) for n in targets}}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, nargs="+", default=[10, 40], help="timed steps per measurement")
    p.add_argument("--pairs", type=int, default=2, help="pairs of side-by-side processes per --steps value")
    p.add_argument("--masks", help="results/packed/train.npz of a run: also time a batch of real masks")
    p.add_argument("--fp32", action="store_true", help="time fp32 steps (default: bf16 autocast)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(**json.loads(args.worker))))
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for steps in args.steps:
        for pair in range(args.pairs):
            jobs = [json.dumps(dict(steps=steps, seed=2 * pair + i, masks_path=args.masks, bf16=not args.fp32))
                    for i in range(2)]
            procs = [subprocess.Popen([sys.executable, __file__, "--worker", job], stdout=subprocess.PIPE,
                                      text=True, env=env) for job in jobs]
            for proc in procs:
                out, _ = proc.communicate()
                if proc.returncode != 0:
                    sys.exit(f"a measuring process failed ({proc.returncode})")
                print(out.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
