"""Two runs' out-of-fold scores on the folds both predicted: the same images, so a fair comparison.

    PYTHONPATH=src .venv/bin/python tools/compare_runs.py ../runs/cpu14/results ../runs/wide14/results

For a variant run on some folds only (snakemake targets `results/predict/fold{0,1}/oof.npz`, the same
`folds` config as the baseline, so the same images per fold), against a full run: each run's OOF
score on the common folds' images, raw (threshold 0.5) and post-processed (threshold, min_area and
min_peak searched on those images, as rule postprocess does), and per fold raw. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from saltnet.evaluation.metric import image_scores
from saltnet.evaluation.oof import OofData, load_oof, run_oof_files
from saltnet.evaluation.postprocess import raw_and_postprocessed


def scores(oof: OofData, folds: list[int]) -> dict:
    """One run's scores on `folds`: raw, post-processed, the setting chosen, and raw per fold."""
    out = raw_and_postprocessed(oof.probs, oof.truth)
    hits = image_scores(oof.probs.astype(np.float32) > 0.5, oof.truth)
    out["per_fold_raw"] = {k: float(hits[oof.fold == k].mean()) for k in folds}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs=2, type=Path, help="two runs' results/ folders (packed/, predict/fold*/oof.npz)")
    args = parser.parse_args(argv)
    files = [run_oof_files(r) for r in args.runs]
    common = sorted(set(files[0]) & set(files[1]))
    if not common:
        raise SystemExit(f"{args.runs[0]} and {args.runs[1]}: no fold predicted by both (predict/fold*/oof.npz)")
    oofs = [load_oof(r / "packed/train.npz", {k: f[k] for k in common}) for r, f in zip(args.runs, files)]
    for k in common:
        if not np.array_equal(*(np.sort(oof.ids[oof.fold == k]) for oof in oofs)):
            raise SystemExit(f"fold {k} holds other images in the two runs: their `folds` configs differ")
    out = {"folds": common, "n_images": len(oofs[0].ids),
           **{str(r): scores(oof, common) for r, oof in zip(args.runs, oofs)}}
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
