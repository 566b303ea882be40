"""Post-processing of probabilities into masks: a threshold, then empty every mask smaller than min_area
and every mask whose most confident pixel is below min_peak.

Predicted masks of a few pixels are mostly noise on images without salt, and the competition metric
scores a non-empty prediction on an empty truth 0, the empty prediction 1. Emptying small predicted
masks was used in the 1st-place solution (ybabakhin/kaggle_salt_bes_phalanx, utils.py at commit
f66a0db: masks of 5 pixels or fewer are emptied); we choose the threshold and min_area on the
out-of-fold predictions instead of fixing them.

min_peak decides "salt or no salt" apart from the pixel threshold: the Lovasz-trained model draws a
confident mask where there is salt and a faint one (peak a little above the threshold) where it
guesses; the top teams took that decision with an empty-mask classifier and its own threshold
(e.g. 4th place, SeuTao/TGS-Salt-Identification); here the peak probability is the classifier.
The fold-averaged test probabilities have lower peaks where the folds' models disagree, so the
gate empties such test masks a little more often than it did single models' out-of-fold ones.

Every (threshold, min_area, min_peak) of the grid is scored in closed form: per threshold the images
are scored and their predicted areas and peaks counted once; a mask that min_area or min_peak empties
then scores 1 if its truth is empty and 0 otherwise, so no setting is scored twice.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from saltnet.evaluation.metric import THRESHOLDS_PCT, image_scores

__all__ = ["AUTO", "DEFAULT_THRESHOLDS", "DEFAULT_MIN_AREAS", "DEFAULT_MIN_PEAKS", "apply_postprocess", "apply_setting",
           "describe_setting", "score_grid",
           "search_postprocess", "choose_postprocess", "raw_and_postprocessed"]

AUTO = "auto"  # config value: search the setting on the out-of-fold predictions
DEFAULT_THRESHOLDS = np.arange(20, 81, 2) / 100  # 0.20, 0.22, ..., 0.80
DEFAULT_MIN_AREAS = np.arange(0, 301, 5)  # pixels of the 101x101 mask: 0, 5, ..., 300
DEFAULT_MIN_PEAKS = np.concatenate([[0.0], np.arange(50, 96, 2.5) / 100])  # 0 (off), 0.500, 0.525, ..., 0.950
BASELINE_THRESHOLD = 0.5  # the "before" of an auto threshold: the plain 0.5 cut


def _check_threshold(threshold: float) -> None:
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")


def _check_min_area(min_area: int) -> None:
    if min_area < 0 or int(min_area) != min_area:
        raise ValueError(f"min_area must be a whole number of pixels >= 0, got {min_area}")


def _check_min_peak(min_peak: float) -> None:
    if not 0.0 <= min_peak <= 1.0:
        raise ValueError(f"min_peak must be a probability in [0, 1], got {min_peak}")


def _peaks(probs: np.ndarray) -> np.ndarray:
    """(N, H, W) float -> (N,) float32 highest probability of each image (exact for float16 inputs)."""
    return np.asarray(probs).max(axis=(1, 2)).astype(np.float32)


def _binarize(probs: np.ndarray, threshold: float, chunk: int = 1024) -> np.ndarray:
    """The one place a threshold is applied, always in float32 (exact for the float16 probabilities of
    predict_fold), so the search on OOF and the submission cut at the same value. In chunks: a
    float32 copy of the whole test set would double its memory."""
    probs, cut = np.asarray(probs), np.float32(threshold)
    out = np.empty(probs.shape, dtype=bool)
    for start in range(0, len(probs), chunk):
        out[start:start + chunk] = np.asarray(probs[start:start + chunk], dtype=np.float32) > cut
    return out


def apply_postprocess(probs: np.ndarray, threshold: float, min_area: int, min_peak: float = 0.0) -> np.ndarray:
    """probs (N, H, W) float -> (N, H, W) bool: `probs > threshold`, then masks of fewer than
    `min_area` pixels and masks of images whose highest probability is below `min_peak` emptied.
    The input is not modified."""
    _check_threshold(threshold)
    _check_min_area(min_area)
    _check_min_peak(min_peak)
    masks = _binarize(probs, threshold)
    masks[(masks.sum(axis=(1, 2)) < min_area) | (_peaks(probs) < np.float32(min_peak))] = False
    return masks


def apply_setting(probs: np.ndarray, setting: dict) -> np.ndarray:
    """apply_postprocess with a setting of postprocess.json ('before', 'after' or the top level); a file
    written before min_peak existed had no peak gate (0)."""
    return apply_postprocess(probs, setting["threshold"], setting["min_area"], setting.get("min_peak", 0.0))


def describe_setting(setting: dict) -> str:
    """'threshold 0.45, min_area 40, min_peak 0.65' (min_peak left out where it is 0: no gate)."""
    text = f"threshold {setting['threshold']}, min_area {setting['min_area']}"
    return text + (f", min_peak {setting['min_peak']}" if setting.get("min_peak") else "")


def _hits_and_areas(probs: np.ndarray, truth: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(N,) int hits (score * 10, exact integers) and (N,) predicted areas at one threshold."""
    pred = _binarize(probs, threshold)
    hits = np.rint(image_scores(pred, truth) * len(THRESHOLDS_PCT)).astype(np.int64)
    return hits, pred.sum(axis=(1, 2))


def _total_hits(probs: np.ndarray, truth: np.ndarray, thresholds: np.ndarray, min_areas: np.ndarray,
                min_peaks: np.ndarray) -> np.ndarray:
    """(T, M, P) int64 sum over images of hits; exact, so equal scores compare equal."""
    empty_hits = np.where(truth.any(axis=(1, 2)), 0, len(THRESHOLDS_PCT))  # score of an emptied mask
    peaks = _peaks(probs)
    totals = np.empty((len(thresholds), len(min_areas), len(min_peaks)), dtype=np.int64)
    for row, threshold in enumerate(thresholds):
        hits, areas = _hits_and_areas(probs, truth, threshold)
        order = np.argsort(areas, kind="stable")
        for col, min_peak in enumerate(min_peaks):
            gated = peaks < np.float32(min_peak)  # emptied whatever their area
            kept = order[~gated[order]]  # the others, by increasing area
            lost = np.concatenate([[0], np.cumsum(hits[kept] - empty_hits[kept])])  # by images emptied
            emptied = np.searchsorted(areas[kept], min_areas, side="left")  # images with area < min_area
            totals[row, :, col] = np.where(gated, empty_hits, hits).sum() - lost[emptied]
    return totals


def _grids(thresholds: Sequence[float], min_areas: Sequence[int],
           min_peaks: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked 1-d grids: thresholds float64 in [0, 1], min_areas int64 >= 0, min_peaks float64 in [0, 1]."""
    thresholds, min_areas = np.ravel(thresholds).astype(float), np.ravel(min_areas)
    min_peaks = np.ravel(min_peaks).astype(float)
    if thresholds.size == 0 or min_areas.size == 0 or min_peaks.size == 0:
        raise ValueError(f"empty grid: {thresholds.size} thresholds, {min_areas.size} min_areas, "
                         f"{min_peaks.size} min_peaks")
    for threshold in thresholds:
        _check_threshold(threshold)
    for min_area in min_areas:
        _check_min_area(min_area)
    for min_peak in min_peaks:
        _check_min_peak(min_peak)
    return thresholds, min_areas.astype(np.int64), min_peaks


def _totals(probs: np.ndarray, masks: np.ndarray, thresholds: Sequence[float],
            min_areas: Sequence[int], min_peaks: Sequence[float]) -> np.ndarray:
    truth = np.asarray(masks).astype(bool)
    if np.shape(probs) != truth.shape or truth.ndim != 3 or len(truth) == 0:
        raise ValueError(f"expected probs and masks of one (N, H, W) shape with N > 0, "
                         f"got {np.shape(probs)} and {truth.shape}")
    probs = np.asarray(probs, dtype=np.float32)  # once, not per threshold (float16 compares are slow)
    return _total_hits(probs, truth, *_grids(thresholds, min_areas, min_peaks))


def score_grid(probs: np.ndarray, masks: np.ndarray, thresholds: Sequence[float],
               min_areas: Sequence[int], min_peaks: Sequence[float] = (0.0,)) -> np.ndarray:
    """(T, M, P) float64 mean competition score of every (threshold, min_area, min_peak).

    probs (N, H, W) float, masks (N, H, W) {0, 1} or bool: the truth. Equals scoring
    ``apply_postprocess(probs, t, m, p)`` for each, without thresholding more than once per t.
    """
    return _totals(probs, masks, thresholds, min_areas, min_peaks) / (len(THRESHOLDS_PCT) * len(masks))


def search_postprocess(probs: np.ndarray, masks: np.ndarray, thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
                       min_areas: Sequence[int] = DEFAULT_MIN_AREAS, min_peaks: Sequence[float] = DEFAULT_MIN_PEAKS,
                       default_threshold: float = BASELINE_THRESHOLD) -> dict:
    """The (threshold, min_area, min_peak) of the grids with the best mean score of probs (N, H, W)
    against masks.

    Ties go to the threshold nearest `default_threshold` (then the lower one), then the smaller
    min_area, then the smaller min_peak. Returns the choice and its score, the score at
    (`default_threshold`, 0, 0), and the curve of the score over the thresholds of DEFAULT_THRESHOLDS
    and the searched ones, at the chosen min_area and min_peak and at 0 and 0 (for a plot).
    """
    thresholds, min_areas, min_peaks = _grids(thresholds, min_areas, min_peaks)
    _check_threshold(default_threshold)
    axis_t = np.unique(np.concatenate([DEFAULT_THRESHOLDS, thresholds, [default_threshold]]))
    axis_m = np.unique(np.concatenate([min_areas, [0]]))
    axis_p = np.unique(np.concatenate([min_peaks, [0.0]]))
    totals = _totals(probs, masks, axis_t, axis_m, axis_p)  # integers, so equal scores tie exactly
    scores = totals / (len(THRESHOLDS_PCT) * len(masks))

    # the searched cells of the axes, ranked: best total, then the tie-breaks (np.lexsort: last key first)
    cells = np.ix_(*(np.searchsorted(axis, np.unique(values)) for axis, values in
                     ((axis_t, thresholds), (axis_m, min_areas), (axis_p, min_peaks))))
    t, m, p = np.broadcast_arrays(axis_t[cells[0]], axis_m[cells[1]], axis_p[cells[2]])
    best = np.lexsort((p.ravel(), m.ravel(), t.ravel(), np.round(np.abs(t - default_threshold), 9).ravel(),
                       -totals[cells].ravel()))[0]
    best_t, best_m, best_p = float(t.flat[best]), int(m.flat[best]), float(p.flat[best])
    row, col, depth = (int(np.searchsorted(axis, v))
                       for axis, v in ((axis_t, best_t), (axis_m, best_m), (axis_p, best_p)))
    default = int(np.searchsorted(axis_t, default_threshold))
    return {
        "threshold": best_t, "min_area": best_m, "min_peak": best_p, "score": float(scores[row, col, depth]),
        "default": {"threshold": float(default_threshold), "min_area": 0, "min_peak": 0.0,
                    "score": float(scores[default, 0, 0])},
        "curve": {"threshold": axis_t.tolist(), "min_area": best_m, "min_peak": best_p,
                  "score": scores[:, col, depth].tolist(), "score_min_area_0": scores[:, 0, 0].tolist()},
        "n_images": len(masks),
    }


def _settle(value: float | str, grid: np.ndarray, name: str) -> tuple[Sequence[float], str]:
    """Config value -> (grid to search, how it was chosen)."""
    if isinstance(value, str):
        if value != AUTO:
            raise ValueError(f"{name} must be a number or {AUTO!r}, got {value!r}")
        return grid, "searched on OOF"
    return [value], "fixed in config"


def choose_postprocess(probs: np.ndarray, masks: np.ndarray, threshold: float | str = AUTO,
                       min_area: int | str = AUTO, min_peak: float | str = AUTO) -> dict:
    """Settle config `threshold`, `min_area` and `min_peak` (each a number, or 'auto': searched on these
    out-of-fold predictions) and report the score before (the fixed threshold, or 0.5 when searched;
    min_area and min_peak 0) and after. An 'after' searched on the same images is optimistic."""
    thresholds, threshold_source = _settle(threshold, DEFAULT_THRESHOLDS, "threshold")
    min_areas, min_area_source = _settle(min_area, DEFAULT_MIN_AREAS, "min_area")
    min_peaks, min_peak_source = _settle(min_peak, DEFAULT_MIN_PEAKS, "min_peak")
    baseline = BASELINE_THRESHOLD if threshold == AUTO else threshold
    found = search_postprocess(probs, masks, thresholds, min_areas, min_peaks, default_threshold=baseline)
    return {
        "threshold": found["threshold"], "threshold_source": threshold_source,
        "min_area": found["min_area"], "min_area_source": min_area_source,
        "min_peak": found["min_peak"], "min_peak_source": min_peak_source,
        "before": {"threshold": found["default"]["threshold"], "min_area": 0, "min_peak": 0.0,
                   "oof_map_iou": found["default"]["score"]},
        "after": {"threshold": found["threshold"], "min_area": found["min_area"], "min_peak": found["min_peak"],
                  "oof_map_iou": found["score"]},
        "curve": found["curve"], "n_images": found["n_images"],
    }


def raw_and_postprocessed(probs: np.ndarray, masks: np.ndarray) -> dict:
    """A variant's OOF score as rule postprocess reports it -> {"raw" (threshold 0.5), "postprocessed"
    (after the search), "setting" (the threshold, min_area and min_peak chosen)}; what the tools that
    compare prediction variants on a finished run report (saltnet.evaluation.views: rules analysis_tta and
    analysis_snapshots)."""
    chosen = choose_postprocess(probs, masks)
    return {"raw": chosen["before"]["oof_map_iou"], "postprocessed": chosen["after"]["oof_map_iou"],
            "setting": {k: chosen["after"][k] for k in ("threshold", "min_area", "min_peak")}}
