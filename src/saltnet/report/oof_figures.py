"""Out-of-fold figures: the score per fold and overall before and after post-processing, the score as a
function of the threshold, and the score by salt-coverage class (where a competitor sees what to fix)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from saltnet.evaluation.metric import image_scores
from saltnet.evaluation.oof import OofData, load_oof
from saltnet.evaluation.postprocess import apply_setting, describe_setting
from saltnet.report.figures import POSTPROCESSED, RAW, new_figure, save_figure

__all__ = ["COVERAGE_CLASSES", "COVERAGE_EDGES", "OofData", "load_oof", "coverage_class", "scores_by_coverage",
           "plot_fold_scores", "plot_threshold_curve", "plot_coverage", "oof_figures"]

COVERAGE_CLASSES = ("empty", "small", "medium", "large")
COVERAGE_EDGES = (0.1, 0.5)  # salt share of the image: small (0, 10%], medium (10%, 50%], large above 50%


def coverage_class(truth: np.ndarray, edges: tuple[float, float] = COVERAGE_EDGES) -> np.ndarray:
    """truth (N, H, W) bool -> (N,) str: empty, small, medium or large by the mask's share of the image."""
    coverage = np.asarray(truth, dtype=bool).mean(axis=(1, 2))
    classes = np.select([coverage == 0, coverage <= edges[0], coverage <= edges[1]], list(COVERAGE_CLASSES[:3]),
                        default=COVERAGE_CLASSES[3])
    return classes.astype(str)


def scores_by_coverage(pred: np.ndarray, truth: np.ndarray) -> pd.DataFrame:
    """Competition score per coverage class of the truth; pred, truth (N, H, W) bool.

    One row per class in COVERAGE_CLASSES: n images, share of all, mean score (NaN without images) and
    lost: how much of the overall score the class loses, sum(1 - score) / N, so `1 - lost.sum()` is the
    overall score.
    """
    scores, classes = image_scores(pred, truth), coverage_class(truth)
    rows = []
    for name in COVERAGE_CLASSES:
        mine = scores[classes == name]
        rows.append({"coverage": name, "n": len(mine), "share": len(mine) / len(scores),
                     "score": float(mine.mean()) if len(mine) else float("nan"),
                     "lost": float((1 - mine).sum() / len(scores))})
    return pd.DataFrame(rows)


def _bar_labels(ax, bars, values, fmt="{:.3f}") -> None:
    for bar, value in zip(bars, values):
        if np.isfinite(value):
            ax.annotate(fmt.format(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize="small")


def plot_fold_scores(cv: dict):
    """Figure: OOF score per fold and over all images, raw (threshold 0.5 or fixed, no min_area or
    min_peak) and post-processed; cv: cv_score.json."""
    post = cv["postprocessed"]
    folds = sorted(cv["per_fold"], key=int)
    names = [f"fold {k}" for k in folds] + ["all"]
    raw = [cv["per_fold"][k] for k in folds] + [cv["oof_map_iou"]]
    after = [post["per_fold"][k] for k in folds] + [post["oof_map_iou"]]
    fig, ax = new_figure(max(9, 1.3 * len(names) + 3), 4.5)
    x, width = np.arange(len(names)), 0.38
    _bar_labels(ax, ax.bar(x - width / 2, raw, width, color=RAW,
                           label=f"raw: {describe_setting(cv)}"), raw)
    _bar_labels(ax, ax.bar(x + width / 2, after, width, color=POSTPROCESSED,
                           label=f"post-processed: {describe_setting(post)}"),
                after)
    ax.set(xticks=x, xticklabels=names, ylabel="competition score (map_iou)", ylim=(0, 1.3))
    ax.legend(loc="upper center", ncols=2, fontsize="small")
    ax.set_title(f"out-of-fold score over {cv['n_images']} training images: {cv['oof_map_iou']:.4f} raw, "
                 f"{post['oof_map_iou']:.4f} post-processed\n(threshold {post['threshold_source']}, "
                 f"min_area {post['min_area_source']}{_peak_source(post)})", fontsize="medium")
    return fig


def _peak_source(setting: dict) -> str:
    return f", min_peak {setting['min_peak_source']}" if "min_peak_source" in setting else ""


def plot_threshold_curve(chosen: dict):
    """Figure: OOF score by threshold at the chosen min_area and min_peak and at 0 and 0, the chosen
    setting and the 'before' marked; chosen: postprocess.json."""
    curve, before, after = chosen["curve"], chosen["before"], chosen["after"]
    fig, ax = new_figure(8, 4)
    at = f"min_area {curve['min_area']}" + (f", min_peak {curve['min_peak']}" if curve.get("min_peak") else "")
    ax.plot(curve["threshold"], curve["score"], color=POSTPROCESSED, label=at)
    ax.plot(curve["threshold"], curve["score_min_area_0"], color=RAW, linestyle="--", label="min_area 0, no min_peak")
    ax.plot(after["threshold"], after["oof_map_iou"], marker="*", markersize=14, color="black", linestyle="none",
            label=f"chosen: {describe_setting(after)}: {after['oof_map_iou']:.4f}")
    ax.plot(before["threshold"], before["oof_map_iou"], marker="o", color=RAW, linestyle="none",
            label=f"before: {describe_setting(before)}: {before['oof_map_iou']:.4f}")
    ax.set(xlabel="probability threshold", ylabel="out-of-fold competition score")
    ax.set_title(f"score vs threshold over {chosen['n_images']} out-of-fold images\n(threshold "
                 f"{chosen['threshold_source']}, min_area {chosen['min_area_source']}{_peak_source(chosen)})",
                 fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def plot_coverage(raw: pd.DataFrame, post: pd.DataFrame, setting: str):
    """Figure of two panels: mean score per coverage class raw and post-processed (with n images), and
    how much of the overall score each class loses after post-processing (tables: scores_by_coverage)."""
    fig, (score_ax, lost_ax) = new_figure(12, 4, ncols=2)
    x, width = np.arange(len(raw)), 0.38
    names = [f"{c}\n{n} images ({s:.0%})" for c, n, s in zip(raw["coverage"], raw["n"], raw["share"])]
    _bar_labels(score_ax, score_ax.bar(x - width / 2, raw["score"].fillna(0), width, color=RAW, label="raw"),
                raw["score"])
    _bar_labels(score_ax, score_ax.bar(x + width / 2, post["score"].fillna(0), width, color=POSTPROCESSED,
                                       label=f"post-processed ({setting})"), post["score"])
    score_ax.set(xticks=x, xticklabels=names, ylabel="mean score", ylim=(0, 1.3),
                 title="score by salt coverage of the true mask")
    score_ax.legend(loc="upper center", ncols=2, fontsize="small")
    _bar_labels(lost_ax, lost_ax.bar(x, post["lost"], color="firebrick"), post["lost"])
    lost_ax.set(xticks=x, xticklabels=names, ylabel="points of the overall score lost",
                title=f"what each class costs (post-processed): overall {1 - post['lost'].sum():.4f}")
    fig.suptitle("coverage: the share of the image that is salt in the true mask; small up to "
                 f"{COVERAGE_EDGES[0]:.0%}, medium up to {COVERAGE_EDGES[1]:.0%}, large above", fontsize="small")
    return fig


def oof_figures(packed_train: str | Path, oof: dict[int, str], cv_score: str | Path, postprocess: str | Path,
                out_scores: str | Path, out_threshold: str | Path, out_coverage: str | Path) -> pd.DataFrame:
    """The three out-of-fold PNGs; returns the post-processed coverage table (for the log)."""
    cv, chosen = json.loads(Path(cv_score).read_text()), json.loads(Path(postprocess).read_text())
    save_figure(plot_fold_scores(cv), out_scores)
    save_figure(plot_threshold_curve(chosen), out_threshold)
    data = load_oof(packed_train, oof)
    before, after = chosen["before"], chosen["after"]
    raw = scores_by_coverage(apply_setting(data.probs, before), data.truth)
    post = scores_by_coverage(apply_setting(data.probs, after), data.truth)
    save_figure(plot_coverage(raw, post, describe_setting(after)), out_coverage)
    return post
