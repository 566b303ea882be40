"""What each post-processing value buys on a finished run's out-of-fold predictions, and how much of it
holds on images it was not chosen on.

    .venv/bin/python tools/postprocess_gain.py ../runs/cpu6/results

Prints the OOF score raw (0.5), with threshold + min_area searched (min_peak off) and with all three
searched (what rule postprocess does); then, per fold, both searches made on the other folds' images
and scored on that fold's, and the mean over folds (weighted by images) of those held-out scores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from saltnet.evaluation.metric import image_scores
from saltnet.evaluation.oof import load_oof, run_oof_files
from saltnet.evaluation.postprocess import apply_setting, choose_postprocess


def _score(oof, rows: np.ndarray, setting: dict) -> float:
    """Competition score of the OOF images `rows` (bool mask) post-processed with `setting`."""
    return float(image_scores(apply_setting(oof.probs[rows], setting), oof.truth[rows]).mean())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="a run's results/ folder (packed/train.npz, predict/fold*/oof.npz)")
    results = Path(parser.parse_args(argv).results)
    oof_files = run_oof_files(results)
    oof = load_oof(results / "packed/train.npz", oof_files, complete=True)
    out = {"all": {"raw": float(image_scores(oof.probs.astype(np.float32) > 0.5, oof.truth).mean()),
                   "threshold_min_area": choose_postprocess(oof.probs, oof.truth, min_peak=0)["after"],
                   "with_min_peak": choose_postprocess(oof.probs, oof.truth)["after"]}}
    # Leave one fold out: the values chosen on the other folds' images, scored on the held-out fold's
    # (with 2 folds: chosen on one fold, scored on the other).
    held_out = {}
    for fold in oof_files:
        a, b = oof.fold != fold, oof.fold == fold
        held_out[fold] = {"images": int(b.sum()), "raw": _score(oof, b, {"threshold": 0.5, "min_area": 0}),
                          "threshold_min_area": _score(oof, b, choose_postprocess(oof.probs[a], oof.truth[a],
                                                                                  min_peak=0)["after"]),
                          "with_min_peak": _score(oof, b, choose_postprocess(oof.probs[a], oof.truth[a])["after"])}
        out[f"chosen on the other folds, scored on fold {fold}"] = held_out[fold]
    n = sum(h["images"] for h in held_out.values())
    out["held-out folds, image-weighted mean"] = {
        key: sum(h[key] * h["images"] for h in held_out.values()) / n
        for key in ("raw", "threshold_min_area", "with_min_peak")}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
