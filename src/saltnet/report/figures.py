"""Matplotlib figures without pyplot: no global state, no display; PNGs are drawn by the Agg renderer."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from saltnet.runtime.atomic import atomic_path

__all__ = ["DPI", "STAGE_COLORS", "RAW", "POSTPROCESSED", "fold_color", "new_figure", "save_figure", "epoch_axis",
           "one_based"]

DPI = 100  # 10 x 4 inches -> 1000 x 400 px: sharp in the report, a few tens of kB
STAGE_COLORS = {"train_loss": "tab:blue", "train_main_loss": "tab:cyan", "valid_loss": "tab:orange",
                "map_iou": "tab:green", "lr": "tab:gray"}
RAW, POSTPROCESSED = "tab:gray", "tab:green"  # score bars: before and after post-processing


def fold_color(fold: int) -> str:
    """One colour per fold, the same in every figure (tab10 repeats after 10 folds)."""
    return f"C{int(fold) % 10}"


def new_figure(width: float, height: float, layout: str | None = "constrained", **subplots) -> tuple[Figure, object]:
    """A Figure of width x height inches and its axes (plt.subplots' arguments). Constrained layout by
    default; None for grids of images, where it costs seconds and fixed margins do as well."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    return fig, fig.subplots(**subplots)


def save_figure(fig: Figure, path: str | Path) -> None:
    """Write `fig` atomically (a killed job leaves no half-written figure), as PNG, or as JPEG (quality 90)
    for a path ending in .jpg: grids of seismic images are 3-4x smaller so, and the report embeds them."""
    jpeg = Path(path).suffix.lower() in (".jpg", ".jpeg")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="jpeg" if jpeg else "png", dpi=DPI, pil_kwargs={"quality": 90} if jpeg else None)


def epoch_axis(ax) -> None:
    """Label an axis of epochs (call after plotting): whole numbers only, and at least 0.5 .. 1.5 wide, so
    a 1-epoch run gets the tick 1, not 0.96 ... 1.04."""
    low, high = ax.get_xlim()
    ax.set_xlim(min(low, 0.5), max(high, 1.5))
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.grid(alpha=0.3)


def one_based(epochs) -> object:
    """Epochs as the logs and figures count them (1..N); history.parquet and run.json count from 0."""
    return epochs + 1
