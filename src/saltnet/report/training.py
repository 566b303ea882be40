"""Training curves: per fold and stage (losses, competition metric, learning rate by epoch, best epoch
marked), and one overview of every fold that draws the folds that finished and names the others."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd

from saltnet.report.figures import STAGE_COLORS, epoch_axis, fold_color, new_figure, one_based, save_figure

__all__ = ["STAGES", "best_epoch", "plot_stage", "training_figure", "read_histories", "plot_overview",
           "overview_figure"]

STAGES = ("train", "finetune")  # the two training stages, in order (results/{stage}/fold{k}/)


def best_epoch(history: pd.DataFrame, run: dict | None = None) -> int:
    """The kept epoch (0-based): run.json's best_epoch, else the first epoch with the highest map_iou
    (as training keeps it: a later epoch must be strictly better)."""
    if run and run.get("best_epoch") is not None:
        return int(run["best_epoch"])
    return int(history["epoch"].iloc[int(history["map_iou"].to_numpy().argmax())])


def _mark_best(ax, epoch: int) -> None:
    ax.axvline(one_based(epoch), color="black", linestyle=":", linewidth=1)


def plot_stage(history: pd.DataFrame, title: str, best: int):
    """Figure of three panels by epoch: train/valid loss, map_iou, lr; the best epoch dotted and starred.

    history: one row per epoch with epoch (0-based), train_loss, valid_loss, map_iou, lr, and with deep
    supervision train_main_loss (the main output's share of train_loss, the one to compare with valid_loss).
    """
    fig, (loss_ax, metric_ax, lr_ax) = new_figure(12, 3.6, ncols=3)
    x = one_based(history["epoch"])
    for name, ax in (("train_loss", loss_ax), ("train_main_loss", loss_ax), ("valid_loss", loss_ax),
                     ("map_iou", metric_ax), ("lr", lr_ax)):
        if name in history:
            ax.plot(x, history[name], marker="o", markersize=3, color=STAGE_COLORS[name], label=name)
    best_row = history[history["epoch"] == best]
    if len(best_row):
        score = float(best_row["map_iou"].iloc[0])
        metric_ax.plot(one_based(best), score, marker="*", markersize=14, color="black", linestyle="none",
                       label=f"best: {score:.4f} at epoch {one_based(best)}")
    for ax, ylabel in ((loss_ax, "loss"), (metric_ax, "map_iou (competition metric)"), (lr_ax, "learning rate")):
        _mark_best(ax, best)
        epoch_axis(ax)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    return fig


def _stage_title(fold: int, stage: str, run: dict, history: pd.DataFrame, best: int) -> str:
    size = f", {run['size']} px" if run.get("size") else ""
    epochs = run.get("epochs") or len(history)
    device = f", {run['device']}, {run.get('precision', '?')}" if run.get("device") else ""
    swa = run.get("swa") or 0
    kept = (f"; model: weights of epochs {max(1, epochs - swa + 1)}-{epochs} averaged (swa)" if swa > 1
            else "; model: the last epoch's weights (swa 1)" if swa == 1 else "")
    return (f"fold {fold}, {stage}{size}: best epoch {one_based(best)}/{epochs}, "
            f"map_iou {float(history['map_iou'].max()):.4f}{device}{kept}")


def training_figure(history: str | Path, run: str | Path, fold: int, stage: str, out: str | Path) -> None:
    """PNG of one fold's stage from its history.parquet and run.json."""
    frame, info = pd.read_parquet(history), json.loads(Path(run).read_text())
    best = best_epoch(frame, info)
    save_figure(plot_stage(frame, _stage_title(fold, stage, info, frame, best), best), out)


def read_histories(paths: dict[str, dict[int, str]]) -> tuple[dict[tuple[str, int], pd.DataFrame], list[str]]:
    """The histories that exist, by (stage, fold), and 'fold <k> <stage>' for each missing one.

    paths: {stage: {fold: path of its history.parquet}}, every fold the run should have.
    """
    found, missing = {}, []
    for stage, by_fold in paths.items():
        for fold, path in sorted(by_fold.items()):
            if Path(path).is_file():
                found[(stage, int(fold))] = pd.read_parquet(path)
            else:
                missing.append(f"fold {fold} {stage}")
    return found, missing


def plot_overview(histories: dict[tuple[str, int], pd.DataFrame], stages, missing: list[str]):
    """Figure with a row per stage: valid loss and map_iou by epoch, a line per fold, each fold's best
    epoch starred; the missing (stage, fold) pairs named under the title."""
    fig, axes = new_figure(12, 3.4 * len(stages), nrows=len(stages), ncols=2, squeeze=False)
    for row, stage in enumerate(stages):
        loss_ax, metric_ax = axes[row]
        for (run_stage, fold), history in sorted(histories.items()):
            if run_stage != stage:
                continue
            x, color = one_based(history["epoch"]), fold_color(fold)
            loss_ax.plot(x, history["valid_loss"], marker="o", markersize=3, color=color, label=f"fold {fold}")
            metric_ax.plot(x, history["map_iou"], marker="o", markersize=3, color=color, label=f"fold {fold}")
            best = best_epoch(history)
            metric_ax.plot(one_based(best), history["map_iou"].max(), marker="*", markersize=12, color=color)
        for ax, ylabel in ((loss_ax, "valid loss"), (metric_ax, "map_iou")):
            epoch_axis(ax)
            ax.set(ylabel=ylabel, title=stage)
            if ax.lines:
                ax.legend(fontsize="small")
            else:
                ax.text(0.5, 0.5, f"no fold finished {stage}", ha="center", va="center", transform=ax.transAxes)
    title = f"{len(histories)} of {len(histories) + len(missing)} fold stages; best epochs starred"
    if missing:
        title += "\n" + textwrap.fill("missing: " + "; ".join(missing), width=140)
    fig.suptitle(title, color="firebrick" if missing else "black")
    return fig


def overview_figure(paths: dict[str, dict[int, str]], out: str | Path) -> list[str]:
    """PNG of every fold's curves that exists (paths: {stage: {fold: history.parquet}}); returns the
    lines naming the missing ones."""
    histories, missing = read_histories(paths)
    save_figure(plot_overview(histories, list(paths), missing), out)
    return missing
