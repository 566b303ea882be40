"""What each recipe part buys: short proxies of the CPU preset, one part changed at a time.

`python -m saltnet.performance.ablate --data-dir ../shared/data/tgs` (or `make ablation`) runs the real
Snakemake DAG once per variant, each in its own folder under `--workdir`, on fold 0 of 2 (`--folds`,
whatever the preset's folds) with few epochs (the proxy: `--train-epochs`, `--finetune-epochs`), and
scores fold 0's out-of-fold predictions with the competition metric at threshold 0.5 (no
post-processing, whose gain the full run reports). Prints a table of each variant's score and its
difference to the full recipe, and writes them as JSON with `--out`. Variants run one after another:
never time two at once.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from saltnet.config.resolve import REPO
from saltnet.evaluation.metric import image_scores
from saltnet.evaluation.oof import load_oof
from saltnet.runtime.atomic import write_json

__all__ = ["VARIANTS", "variant_command", "run_variant", "score_fold", "parse_args", "main"]


# variant -> --config overrides of the CPU preset; "recipe" is the preset itself.
VARIANTS: dict[str, list[str]] = {
    "recipe": [],
    "augment": ["augment={hflip: true, p: 0.25, shift: 0.1, scale: 0.1, rotate: 10, brightness: 0.1}"],
    "lovasz_only": ["train={loss: symmetric_lovasz}"],
    "pad_104": ["train={size: 104}", "finetune={size: 104}"],
    "batch_8": ["train={batch_size: 8}", "finetune={batch_size: 8}"],
    "train_64": ["train={size: 64}"],  # progressive resizing: a cheap first stage, resized to 64 px
    "no_deep_supervision": ["model=resunet_scse"],  # no auxiliary losses on the decoder levels
    "folds_3": ["folds={n: 3, seed: 42}"],  # fold 0 of 3: 2000 training images instead of 1500
    "lr_high": ["train={lr: 6.0e-3}"],  # twice the first stage's peak learning rate (few epochs: a faster start?)
    "lr_low": ["train={lr: 1.5e-3}"],  # half of it
    "lovasz_elu": ["loss=symmetric_lovasz_elu"],  # the Lovasz stage with elu(e) + 1 (1st place); see also
    # tools/finetune_proxy.py, which fine-tunes from a full first stage (2 proxy epochs say little here)
}


def variant_command(name: str, overrides: list[str], args: argparse.Namespace) -> list[str]:
    """The snakemake command line of one variant, run in workdir/name up to fold 0's predictions."""
    folder = Path(args.workdir) / name
    # The proxy's finetune keeps its best epoch (swa 0), as when its scores were first measured: the
    # preset's weight average of 3 epochs (measured on a full run, tools/snapshot_gain.py) does not fit
    # a 2-epoch stage. A variant may set its own.
    epochs = [f"train={{epochs: {args.train_epochs}}}", f"finetune={{epochs: {args.finetune_epochs}, swa: 0}}"]
    # One fold alone: all the cores for it (the preset's fold_threads: share would give it half).
    # The proxy's epochs are fixed: no time budget scales them (the preset has one).
    # The proxy's fold layout is its own (--folds, default 2), not the preset's, so that its scores stay
    # comparable with those measured before the preset changed its folds; a variant may set its own.
    layout = [] if any(o.startswith("folds=") for o in overrides) else [f"folds={{n: {args.folds}, seed: 42}}"]
    config = [f"data_dir={Path(args.data_dir).resolve()}", f"fold_threads={args.cores}", "budget_minutes=null",
              *layout, *epochs, *overrides]
    # Later --config entries of the same section replace earlier ones: merge the train overrides.
    merged = _merge_sections(config)
    cmd = [str(Path(sys.executable).with_name("snakemake")), "-s", str(REPO / "Snakefile"), "--directory",
           str(folder), "--cores", str(args.cores), "--configfile", str(REPO / "workflow/presets/cpu.yaml"),
           "--config", *merged, "--", "results/predict/fold0/oof.npz"]
    return cmd


def run_variant(name: str, overrides: list[str], args: argparse.Namespace) -> Path:
    """Run the DAG up to fold 0's predictions in workdir/name; returns that folder."""
    folder = Path(args.workdir) / name
    folder.mkdir(parents=True, exist_ok=True)
    cmd = variant_command(name, overrides, args)
    with open(folder / "ablate.log", "w") as log:
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True)
    return folder


def _merge_sections(entries: list[str]) -> list[str]:
    """'train={epochs: 5}' and 'train={loss: x}' -> 'train={epochs: 5, loss: x}' (order kept)."""
    merged: dict[str, list[str]] = {}
    for entry in entries:
        key, value = entry.split("=", 1)
        if value.startswith("{") and key in merged and merged[key][0].startswith("{"):
            merged[key] = [merged[key][0][:-1] + ", " + value[1:]]
        else:
            merged[key] = [value]
    return [f"{key}={value[0]}" for key, value in merged.items()]


def score_fold(folder: Path) -> float:
    """Competition score of fold 0's out-of-fold probabilities at threshold 0.5."""
    oof = load_oof(folder / "results/packed/train.npz", {0: folder / "results/predict/fold0/oof.npz"})
    return float(image_scores(oof.probs.astype(np.float32) > 0.5, oof.truth).mean())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m saltnet.performance.ablate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="competition data folder")
    parser.add_argument("--workdir", default="runs/ablation", help="one folder per variant is made here")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--train-epochs", type=int, default=5)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--folds", type=int, default=2, help="folds of the proxy's split (fold 0 is trained)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", help="write the rows as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    rows = []
    for name in args.variants:
        started = time.time()
        folder = run_variant(name, VARIANTS[name], args)
        rows.append({"variant": name, "overrides": VARIANTS[name], "fold0_oof_map_iou": score_fold(folder),
                     "seconds": round(time.time() - started), "train_epochs": args.train_epochs,
                     "finetune_epochs": args.finetune_epochs})
        print(f"{name}: fold-0 OOF {rows[-1]['fold0_oof_map_iou']:.4f} ({rows[-1]['seconds']} s)", flush=True)
    base = next((r["fold0_oof_map_iou"] for r in rows if r["variant"] == "recipe"), None)
    print("\n| variant | change | fold-0 OOF score | vs recipe |\n|---|---|---|---|")
    for row in rows:
        delta = "" if base is None else f"{row['fold0_oof_map_iou'] - base:+.4f}"
        change = " ".join(row["overrides"]) or "CPU preset"
        print(f"| {row['variant']} | {change} | {row['fold0_oof_map_iou']:.4f} | {delta} |")
    if args.out:
        write_json(args.out, rows)
    return rows


if __name__ == "__main__":
    main()
