"""Example images: the worst and the best out-of-fold predictions with the true mask and the prediction
overlaid, and a seeded sample of test predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from saltnet.data.pack import load_packed
from saltnet.evaluation.metric import image_scores
from saltnet.evaluation.oof import OofData, load_oof
from saltnet.evaluation.postprocess import apply_setting, describe_setting
from saltnet.report.figures import new_figure, save_figure

__all__ = ["N_EXAMPLES", "worst_and_best", "plot_overlays", "oof_examples", "sample_test_predictions",
           "examples_figures"]

N_EXAMPLES = 12  # images per figure: 2 rows of 6
TRUTH, PRED = "lime", "red"


def worst_and_best(scores: np.ndarray, truth: np.ndarray, pred: np.ndarray, n: int = N_EXAMPLES):
    """(worst, best): indices of up to n images each; scores (N,) float, truth and pred (N, H, W) bool.

    Worst: lowest score first, then the largest area error. Best: highest score among images with salt
    (an empty mask predicted empty scores 1 but shows nothing), then the largest true mask; images
    without salt only if there are too few with it.
    """
    truth_area, pred_area = truth.sum(axis=(1, 2)), pred.sum(axis=(1, 2))
    worst = np.lexsort((-np.abs(truth_area - pred_area), scores))[:n]
    best = np.lexsort((-truth_area, -scores, truth_area == 0))[:n]
    return worst, best


def _overlay(ax, image: np.ndarray, pred: np.ndarray, truth: np.ndarray | None, title: str) -> None:
    """Grey image, the prediction filled in red, the true mask outlined in green."""
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    fill = np.zeros((*pred.shape, 4))
    fill[pred] = (1.0, 0.0, 0.0, 0.35)
    ax.imshow(fill)
    if pred.any():
        ax.contour(pred, levels=[0.5], colors=PRED, linewidths=0.8)
    if truth is not None and truth.any():
        ax.contour(truth, levels=[0.5], colors=TRUTH, linewidths=1.2)
    ax.set_title(title, fontsize=7)
    ax.set_axis_off()


def plot_overlays(images: np.ndarray, preds: np.ndarray, truths: np.ndarray | None, titles: list[str],
                  suptitle: str, ncols: int = 6):
    """Figure of a grid of overlays: images (n, H, W) uint8, preds and truths (n, H, W) bool (truths
    None for test images)."""
    nrows = max(1, -(-len(images) // ncols))
    height = 1.95 * nrows + 0.5
    fig, axes = new_figure(1.8 * ncols, height, layout=None, nrows=nrows, ncols=ncols, squeeze=False)
    fig.subplots_adjust(left=0.005, right=0.995, bottom=0.005, top=1 - 0.75 / height, wspace=0.05, hspace=0.35)
    for i, ax in enumerate(axes.flat):
        if i < len(images):
            _overlay(ax, images[i], preds[i], None if truths is None else truths[i], titles[i])
        else:
            ax.set_axis_off()
    fig.suptitle(suptitle, fontsize="medium")
    return fig


def _coverage(mask: np.ndarray) -> str:
    return f"{mask.mean():.0%}"


def oof_examples(data: OofData, chosen: dict, out_worst: str | Path, out_best: str | Path,
                 n: int = N_EXAMPLES) -> None:
    """Image grids (a .jpg path: JPEG) of the n worst and the n best out-of-fold images, post-processed as
    `chosen` (postprocess.json) says."""
    pred = apply_setting(data.probs, chosen)
    scores = image_scores(pred, data.truth)
    legend = f"prediction ({describe_setting(chosen)}) red, true mask outlined in green"
    for picked, out, which in zip(worst_and_best(scores, data.truth, pred, n), (out_worst, out_best),
                                  ("worst", "best")):
        titles = [f"{data.ids[i]} fold {data.fold[i]}\nscore {scores[i]:.2f}, salt {_coverage(data.truth[i])} "
                  f"(pred {_coverage(pred[i])})" for i in picked]
        save_figure(plot_overlays(data.images[picked], pred[picked], data.truth[picked], titles,
                               f"the {len(picked)} {which} of {len(scores)} out-of-fold images: {legend}"), out)


def sample_test_predictions(packed_test: str | Path, ensemble: str | Path, chosen: dict, out: str | Path,
                n: int = N_EXAMPLES, seed: int = 0) -> None:
    """Image grid of a seeded sample of n test images with the fold ensemble's post-processed prediction."""
    test = load_packed(packed_test)
    with np.load(ensemble, allow_pickle=False) as npz:
        ids, probs = npz["ids"], npz["probs"]
    picked = np.sort(np.random.default_rng(seed).choice(len(ids), size=min(n, len(ids)), replace=False))
    masks = apply_setting(probs[picked], chosen)
    row_of = {sample_id: k for k, sample_id in enumerate(test.ids)}
    images = test.images[[row_of[i] for i in ids[picked]]]
    titles = [f"{ids[i]}\npredicted salt {_coverage(m)}" for i, m in zip(picked, masks)]
    save_figure(plot_overlays(images, masks, None, titles, f"{len(picked)} of {len(ids)} test images (seed {seed}), "
                           f"fold ensemble: prediction ({describe_setting(chosen)}) in red"), out)


def examples_figures(packed_train: str | Path, packed_test: str | Path, oof: dict[int, str],
                     ensemble: str | Path, postprocess: str | Path, out_worst: str | Path, out_best: str | Path,
                     out_test: str | Path, n: int = N_EXAMPLES, seed: int = 0) -> None:
    """The worst and best out-of-fold images and a sample of test images (oof: {fold: oof.npz}), with
    postprocess.json's threshold, min_area and min_peak."""
    chosen = json.loads(Path(postprocess).read_text())
    oof_examples(load_oof(packed_train, oof), chosen, out_worst, out_best, n)
    sample_test_predictions(packed_test, ensemble, chosen, out_test, n, seed)
