"""What each post-processing value buys on a finished run's out-of-fold predictions, and how much of it
holds on images it was not chosen on.

    .venv/bin/python tools/postprocess_gain.py ../runs/cpu6/results

Prints the OOF score raw (0.5), with threshold + min_area searched (min_peak off) and with all three
searched (what rule postprocess does); then, per fold pair, both searches made on one fold's images
and scored on the other's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from saltnet.metric import image_scores
from saltnet.oof import load_oof
from saltnet.postprocess import apply_setting, choose_postprocess


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="a run's results/ folder (packed/train.npz, predict/fold*/oof.npz)")
    results = Path(parser.parse_args(argv).results)
    oof_files = {int(p.parent.name.removeprefix("fold")): str(p) for p in sorted(results.glob("predict/fold*/oof.npz"))}
    oof = load_oof(results / "packed/train.npz", oof_files, complete=True)
    out = {"all": {"raw": float(image_scores(oof.probs.astype(np.float32) > 0.5, oof.truth).mean()),
                   "threshold_min_area": choose_postprocess(oof.probs, oof.truth, min_peak=0)["after"],
                   "with_min_peak": choose_postprocess(oof.probs, oof.truth)["after"]}}
    for chosen_on in oof_files:
        for scored_on in (f for f in oof_files if f != chosen_on):
            a, b = oof.fold == chosen_on, oof.fold == scored_on
            score = lambda setting: float(image_scores(apply_setting(oof.probs[b], setting), oof.truth[b]).mean())
            out[f"chosen on fold {chosen_on}, scored on fold {scored_on}"] = {
                "raw": score({"threshold": 0.5, "min_area": 0}),
                "threshold_min_area": score(choose_postprocess(oof.probs[a], oof.truth[a], min_peak=0)["after"]),
                "with_min_peak": score(choose_postprocess(oof.probs[a], oof.truth[a])["after"])}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
