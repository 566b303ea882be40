"""Where a run's out-of-fold points are lost: by salt coverage, on vertical-band masks, and how sure
the net was on the images whose salt it predicted empty.

    PYTHONPATH=src .venv/bin/python tools/oof_losses.py ../runs/cpu14/results [--folds 0 1]

The predictions are post-processed with the setting rule postprocess chose (results/postprocess.json,
"after"); with --folds, or where that file is missing (a run of some folds only), the setting is
searched on the images scored, as rule postprocess would. Per group of images: how many, their mean
score, the points of the overall score they lose ((1 - score) summed over the group / all images) and
how many were predicted empty. Then the images by their peak probability: how many empty and how
many with salt fall in each band, so one sees whether any gate could separate them. Prints JSON.
The run's report draws the coarser classes (empty, up to 10%, up to 50%, larger: saltnet.report
scores_by_coverage); the bands here split the small masks, where most points go.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from saltnet.data.cleaning import vertical_masks
from saltnet.evaluation.metric import image_scores
from saltnet.evaluation.oof import OofData, load_oof, run_oof_files
from saltnet.evaluation.postprocess import apply_setting, raw_and_postprocessed

COVERAGE_BANDS = (0.0, 0.01, 0.03, 0.10, 0.30, 1.0)  # share of the image that is salt
PEAK_BANDS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 1.0)


def _group(scores: np.ndarray, members: np.ndarray, predicted_empty: np.ndarray) -> dict:
    return {"n": int(members.sum()), "score": float(scores[members].mean()) if members.any() else None,
            "points_lost": float((1 - scores[members]).sum() / len(scores)),
            "predicted_empty": int((members & predicted_empty).sum())}


def losses(oof: OofData, setting: dict) -> dict:
    """The groups' scores and losses of `oof` post-processed with `setting` (threshold, min_area, min_peak)."""
    n = len(oof.ids)
    probs = oof.probs.astype(np.float32)
    pred = apply_setting(probs, setting)
    scores = image_scores(pred, oof.truth)
    coverage = oof.truth.reshape(n, -1).mean(1)
    empty_pred = pred.reshape(n, -1).sum(1) == 0
    groups = {"empty": _group(scores, coverage == 0, empty_pred)}
    for lo, hi in zip(COVERAGE_BANDS[:-1], COVERAGE_BANDS[1:]):
        groups[f"salt ({lo:.0%}, {hi:.0%}]"] = _group(scores, (coverage > lo) & (coverage <= hi), empty_pred)
    groups["vertical bands"] = _group(scores, vertical_masks(oof.truth), empty_pred)
    peak = probs.reshape(n, -1).max(1)
    bands = {}
    for lo, hi in zip(PEAK_BANDS[:-1], PEAK_BANDS[1:]):
        inside = (peak >= lo) & ((peak < hi) if hi < 1 else (peak <= hi))
        bands[f"[{lo}, {hi}{']' if hi == 1 else ')'}"] = {"empty": int((inside & (coverage == 0)).sum()),
                                                           "salt": int((inside & (coverage > 0)).sum())}
    return {"n_images": n, "score": float(scores.mean()), "setting": setting, "groups": groups,
            "salt_predicted_empty": int((empty_pred & (coverage > 0)).sum()),
            "empty_given_a_mask": int((~empty_pred & (coverage == 0)).sum()), "peak_probability": bands}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a run's results/ folder (packed/, predict/fold*/oof.npz)")
    parser.add_argument("--folds", type=int, nargs="+", help="only these folds' images (default: every fold predicted)")
    args = parser.parse_args(argv)
    files = run_oof_files(args.results)
    if args.folds:
        missing = sorted(set(args.folds) - set(files))
        if missing:
            raise SystemExit(f"{args.results}: no predict/fold{missing[0]}/oof.npz (folds predicted: {sorted(files)})")
        files = {k: files[k] for k in args.folds}
    if not files:
        raise SystemExit(f"{args.results}: no predict/fold*/oof.npz")
    oof = load_oof(args.results / "packed/train.npz", files)
    chosen = args.results / "postprocess.json"
    if chosen.exists() and not args.folds:
        after = json.loads(chosen.read_text())["after"]
        setting = {k: after[k] for k in ("threshold", "min_area", "min_peak")}
    else:
        setting = raw_and_postprocessed(oof.probs, oof.truth)["setting"]
    out = losses(oof, setting)
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
