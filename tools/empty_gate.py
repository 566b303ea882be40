"""Could a better "salt or no salt" decision raise a finished run's score? Measured on its out-of-fold
predictions against the gate the run uses (results/postprocess.json: threshold, min_area, min_peak):

    .venv/bin/python tools/empty_gate.py runs/cpu-preset

- `oracle`: the truth decides which images are empty, the others keep their mask at the run's threshold
  (the most any empty/non-empty decision could give);
- `salt_predicted_empty`: the salt images the run empties, and what their masks at its threshold would
  score if they were kept (what un-emptying them could give);
- `stacked`: an empty-mask classifier on per-image features of the predictions and the image (peak,
  predicted areas, mean probabilities, the image's brightness and contrast), the idea of the top teams'
  separate empty classifiers (4th place, SeuTao/TGS-Salt-Identification) taken from our own outputs;
  trained, and its cut and the pixel threshold chosen, on the other folds, scored on each held-out fold,
  beside the run's own gate chosen the same way (results/analysis/postprocess.json's held_out).

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier  # fastai depends on scikit-learn
from sklearn.linear_model import LogisticRegression

from saltnet.evaluation.metric import image_scores
from saltnet.evaluation.oof import OofData, load_oof, run_oof_files
from saltnet.evaluation.postprocess import apply_postprocess, apply_setting

THRESHOLDS = np.arange(0.30, 0.61, 0.04)
CUTS = np.arange(0.10, 0.91, 0.025)
CLASSIFIERS = {
    "logistic": lambda: LogisticRegression(max_iter=2000),
    "boosted_trees": lambda: HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=0),
}


def features(oof: OofData) -> np.ndarray:
    """(N, 8) per image: peak, shares of pixels above 0.3 / 0.5 / 0.7, mean probability, mean of the 20
    highest, the image's mean and standard deviation."""
    flat = oof.probs.reshape(len(oof.ids), -1).astype(np.float32)
    image = oof.images.reshape(len(oof.ids), -1).astype(np.float32)
    return np.stack([flat.max(1), (flat > 0.3).mean(1), (flat > 0.5).mean(1), (flat > 0.7).mean(1), flat.mean(1),
                     np.sort(flat, 1)[:, -20:].mean(1), image.mean(1), image.std(1)], 1)


def _salt(oof: OofData) -> np.ndarray:
    """(N,) bool: the images whose truth holds salt."""
    return oof.truth.reshape(len(oof.ids), -1).any(1)


def _decided(keep: np.ndarray, mask_scores: np.ndarray, salt: np.ndarray) -> np.ndarray:
    """(N,) scores: an image kept scores its mask's score, an emptied one 1 if it has no salt, else 0."""
    return np.where(keep, mask_scores, (~salt).astype(float))


def _choose(probs: np.ndarray, truth: np.ndarray, salt: np.ndarray, p_salt: np.ndarray) -> tuple[float, float]:
    """(threshold, cut) with the best mean score: masks at the threshold where p_salt >= cut, else empty."""
    best = (-1.0, 0.5, 0.5)
    for threshold in THRESHOLDS:
        mask_scores = image_scores(apply_postprocess(probs, threshold, 0), truth)
        for cut in CUTS:
            score = _decided(p_salt >= cut, mask_scores, salt).mean()
            best = max(best, (score, threshold, cut), key=lambda row: row[0])
    return float(best[1]), float(best[2])


def _p_salt(make, x_fit: np.ndarray, salt_fit: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(len(x),) probability that each image holds salt, from a classifier fitted on (x_fit, salt_fit); where
    those images are all of one kind, that kind's share (1 or 0) for every image."""
    if np.unique(salt_fit).size < 2:
        return np.full(len(x), float(salt_fit[0]))
    return make().fit(x_fit, salt_fit).predict_proba(x)[:, 1]


def stacked_heldout(oof: OofData, make) -> dict:
    """Held-out score of an empty-mask classifier made by `make()`, fold by fold: on the other folds it is
    trained (its probabilities for them out of their own folds too) and its cut and the threshold chosen."""
    x, salt = features(oof), _salt(oof)
    scores, chosen = np.empty(len(oof.ids)), {}
    for fold in np.unique(oof.fold):
        train = oof.fold != fold
        p_train = np.empty(train.sum())
        for inner in np.unique(oof.fold[train]):
            rows = oof.fold[train] == inner
            p_train[rows] = _p_salt(make, x[train][~rows], salt[train][~rows], x[train][rows])
        threshold, cut = _choose(oof.probs[train], oof.truth[train], salt[train], p_train)
        keep = _p_salt(make, x[train], salt[train], x[~train]) >= cut
        masks = apply_postprocess(oof.probs[~train], threshold, 0)
        scores[~train] = _decided(keep, image_scores(masks, oof.truth[~train]), salt[~train])
        chosen[f"fold {fold}"] = {"threshold": round(threshold, 2), "cut": round(cut, 3)}
    return {"held_out": float(scores.mean()), "chosen": chosen}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path, help="a finished run's folder (its results/ holds predict/fold*/oof.npz)")
    results = p.parse_args(argv).run / "results"
    files = run_oof_files(results)
    needed = [results / name for name in ("postprocess.json", "folds.parquet", "packed/train.npz")]
    if not files or not all(path.is_file() for path in needed):
        p.error(f"{results}: no predict/fold*/oof.npz, or one of {', '.join(n.name for n in needed)} missing "
                "(is it a finished run's folder?)")
    oof = load_oof(results / "packed" / "train.npz", files, pd.read_parquet(results / "folds.parquet"))
    if len(np.unique(oof.fold)) < 3:
        p.error(f"{results}: {len(np.unique(oof.fold))} folds; the held-out classifier needs at least 3")
    setting = json.loads((results / "postprocess.json").read_text())["after"]
    salt = _salt(oof)
    run_masks = apply_setting(oof.probs, setting)
    emptied = salt & ~run_masks.reshape(len(oof.ids), -1).any(1)
    at_threshold = apply_postprocess(oof.probs, setting["threshold"], 0)
    heldout_file = results / "analysis" / "postprocess.json"
    out = {
        "setting": setting, "in_sample": float(image_scores(run_masks, oof.truth).mean()),
        "held_out": json.loads(heldout_file.read_text())["held_out"] if heldout_file.is_file() else None,
        "oracle": float(_decided(salt, image_scores(at_threshold, oof.truth), salt).mean()),
        "salt_predicted_empty": {
            "n": int(emptied.sum()),
            "score_if_kept": (float(image_scores(at_threshold[emptied], oof.truth[emptied]).mean())
                              if emptied.any() else None)},
        "stacked": {name: stacked_heldout(oof, make) for name, make in CLASSIFIERS.items()},
    }
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
