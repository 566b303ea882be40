"""What the training loss costs in a training step: bce_dice, symmetric Lovász as two hinges (its
former form: two sorts per map), symmetric Lovász with one sort (losses.symmetric_lovasz), and both losses
with the deep-supervision levels' loss at their own resolution (config aux_resolution: level) instead of
the output's, side by side in one process, rounds interleaved so a machine that slows down slows every
variant alike.

    .venv/bin/python tools/loss_speed.py --model resunet_scse_ds --size 128 --batch-size 16

Each round times `--steps` training steps (saltnet.performance.bench.make_train_step: forward, loss with the
deep-supervision wrapper, backward, Adam) per variant on the model, at 101 px inputs padded as in the
pipeline, with targets of random discs (one image in three empty, as in the data); the medians over the
rounds and their ratio to bce_dice are printed as JSON with the CPU's facts (`--precision bf16`: under bf16
autocast, as the pipeline trains where bf16 is native). Nothing else should run beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from saltnet.config.resolve import preset_path, resolve_config
from saltnet.models.registry import build_model, get_model_spec
from saltnet.performance.bench import make_train_step
from saltnet.runtime.precision import cpu_info
from saltnet.training.losses import lovasz_hinge


def two_sort_symmetric_lovasz(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The reference: symmetric Lovász as the mean of two hinge calls, each with its own sort."""
    return (lovasz_hinge(logits, target) + lovasz_hinge(-logits, 1.0 - target.float())) / 2


def disc_targets(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """(n, 1, size, size) {0,1}: a random disc per image, every third image empty."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, 1, size, size), np.float32)
    for i in range(n):
        if i % 3:
            cy, cx, r = rng.uniform(0, size, 2).tolist() + [rng.uniform(size / 10, size / 2)]
            masks[i, 0] = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    return torch.from_numpy(masks)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resunet_scse_ds")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=5, help="timed steps per variant per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    model = build_model(args.model, "none", args.size).train()
    input_size = get_model_spec(args.model).input_size(args.size, 101)
    x = torch.randn(args.batch_size, 3, input_size, input_size)
    target = disc_targets(args.batch_size, 101)
    variants = {"bce_dice": ("bce_dice", "output"),
                "symmetric_lovasz_two_sorts": (two_sort_symmetric_lovasz, "output"),
                "symmetric_lovasz_one_sort": ("symmetric_lovasz", "output"),
                "bce_dice_aux_level": ("bce_dice", "level"),
                "symmetric_lovasz_aux_level": ("symmetric_lovasz", "level")}
    aux_weight = resolve_config([preset_path("cpu")])["aux_weight"]  # the CPU preset's, as its runs train
    bf16 = args.precision == "bf16"
    steps = {name: make_train_step(model, x, target, bf16=bf16, loss=loss, aux_weight=aux_weight, aux_resolution=where)
             for name, (loss, where) in variants.items()}
    for step in steps.values():
        step()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[name].append((time.perf_counter() - start) / args.steps)
    median = {name: statistics.median(t) for name, t in times.items()}
    out = {"machine": dict(cpu_info(), threads=torch.get_num_threads()), "model": args.model, "size": args.size,
           "batch_size": args.batch_size, "precision": args.precision,
           "step_seconds": {k: round(v, 4) for k, v in median.items()},
           "ratio_to_bce_dice": {k: round(v / median["bce_dice"], 3) for k, v in median.items()},
           "one_sort_speedup": round(median["symmetric_lovasz_two_sorts"] / median["symmetric_lovasz_one_sort"], 3),
           "aux_level_speedup": {"bce_dice": round(median["bce_dice"] / median["bce_dice_aux_level"], 3),
                                 "symmetric_lovasz": round(median["symmetric_lovasz_one_sort"]
                                                           / median["symmetric_lovasz_aux_level"], 3)}}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
