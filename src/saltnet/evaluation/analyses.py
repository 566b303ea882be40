"""What a finished run's out-of-fold predictions say beyond its score: how much of the post-processing's
gain holds on images it was not chosen on, and where the points are lost (by salt coverage, on
vertical-band masks, by the net's peak probability). Rules analysis_postprocess and analysis_losses
write them as JSON beside the run's results; the leaderboard of a sweep reads them.
"""

from __future__ import annotations

import numpy as np

from saltnet.data.cleaning import vertical_masks
from saltnet.evaluation.metric import image_scores
from saltnet.evaluation.oof import OofData
from saltnet.evaluation.postprocess import apply_setting, choose_postprocess

__all__ = ["COVERAGE_BANDS", "PEAK_BANDS", "heldout_postprocess", "coverage_losses"]

COVERAGE_BANDS = (0.0, 0.01, 0.03, 0.10, 0.30, 1.0)  # share of the image that is salt
PEAK_BANDS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 1.0)
SETTING_KEYS = ("threshold", "min_area", "min_peak")


def _parts(oof: OofData, seed: int) -> dict[str, np.ndarray]:
    """{name: bool rows} that partition the OOF images: one part per fold, or with one fold two seeded halves."""
    folds = np.unique(oof.fold)
    if len(folds) > 1:
        return {f"fold {k}": oof.fold == k for k in folds}
    half = np.random.default_rng(seed).permutation(len(oof.ids)) < len(oof.ids) // 2
    return {"half 0": half, "half 1": ~half}


def heldout_postprocess(oof: OofData, threshold="auto", min_area="auto", min_peak="auto", seed: int = 0,
                        chosen: dict | None = None) -> dict:
    """The post-processing chosen as rule postprocess chooses it (the config's values, 'auto' searched),
    once on all images (what the run reports: optimistic, chosen on the images it scores) and once per
    part on the other parts' images, scored on that part's (leave one fold out; a one-fold run is split
    in two seeded halves). Returns raw, in_sample and held_out scores over all images, per part, and
    the optimism in_sample - held_out. chosen: the search on all images where it was made already (rule
    postprocess's postprocess.json)."""
    search = dict(threshold=threshold, min_area=min_area, min_peak=min_peak)
    chosen = chosen or choose_postprocess(oof.probs, oof.truth, **search)
    raw = image_scores(apply_setting(oof.probs, chosen["before"]), oof.truth)
    in_sample = image_scores(apply_setting(oof.probs, chosen["after"]), oof.truth)
    held_out = np.empty(len(oof.ids))
    parts = {}
    for name, rows in _parts(oof, seed).items():
        other = choose_postprocess(oof.probs[~rows], oof.truth[~rows], **search)["after"]
        held_out[rows] = image_scores(apply_setting(oof.probs[rows], other), oof.truth[rows])
        parts[name] = {"images": int(rows.sum()), "setting": {k: other[k] for k in SETTING_KEYS},
                       "raw": float(raw[rows].mean()), "held_out": float(held_out[rows].mean())}
    return {"n_images": len(oof.ids), "raw": float(raw.mean()), "in_sample": float(in_sample.mean()),
            "held_out": float(held_out.mean()), "optimism": float(in_sample.mean() - held_out.mean()),
            "setting": {k: chosen["after"][k] for k in SETTING_KEYS}, "parts": parts}


def _group(scores: np.ndarray, members: np.ndarray, predicted_empty: np.ndarray) -> dict:
    return {"n": int(members.sum()), "score": float(scores[members].mean()) if members.any() else None,
            "points_lost": float((1 - scores[members]).sum() / len(scores)),
            "predicted_empty": int((members & predicted_empty).sum())}


def coverage_losses(oof: OofData, setting: dict) -> dict:
    """Where `oof`, post-processed with `setting` (threshold, min_area, min_peak), loses its points: per
    group of images (empty, salt coverage bands, vertical bands) how many, their mean score, the points
    of the overall score they lose ((1 - score) summed over the group / all images) and how many were
    predicted empty; then how many empty and salt images fall in each band of peak probability, to see
    whether a gate could separate them."""
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
    return {"n_images": n, "score": float(scores.mean()), "setting": {k: setting[k] for k in SETTING_KEYS},
            "groups": groups, "salt_predicted_empty": int((empty_pred & (coverage > 0)).sum()),
            "empty_given_a_mask": int((~empty_pred & (coverage == 0)).sum()), "peak_probability": bands}
