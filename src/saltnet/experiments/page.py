"""The leaderboard page of a sweep: the variants by score, their gains over the baseline with the spread,
score against wall time, where each variant loses its points, and every run with its machine and commit."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from saltnet.report.figures import new_figure, save_figure
from saltnet.runtime.atomic import write_text

__all__ = ["plot_leaderboard", "losses_table", "leaderboard_page", "save_plot"]

class Markup(str):
    """A cell that is HTML made here (a link), not text to escape."""


_STYLE = ("body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1400px}"
          "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.2em .6em;"
          "text-align:right;font-size:88%}th{background:#eee}td.t{text-align:left}.gain{color:#1a7f37}"
          ".loss{color:#b22222}.noise{color:#777}code{background:#f3f3f3;padding:0 .2em}")


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    if isinstance(value, Markup):
        return str(value)
    return html.escape(str(value))


def _table(frame: pd.DataFrame, signed: tuple = (), digits: dict | None = None) -> str:
    digits = digits or {}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for col, value in row.items():
            if col in signed and isinstance(value, (float, np.floating)) and not math.isnan(value):
                text = f"{value:+.{digits.get(col, 4)}f}"
            else:
                text = _fmt(value, digits.get(col, 4))
            cls = f' class="{value}"' if col == "verdict" else (' class="t"' if isinstance(value, str) else "")
            cells.append(f"<td{cls}>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def plot_leaderboard(table: pd.DataFrame, gains: pd.DataFrame, baseline: str):
    """Left: each run's post-processed OOF score against its wall minutes, a colour per variant. Right:
    each variant's raw gain over the baseline per (seed, fold) pair as dots, the mean as a bar, and the
    band of twice the larger standard error (seeds and folds, or images)."""
    fig, (left, right) = new_figure(12, 4.2, ncols=2)
    variants = list(dict.fromkeys(table.variant))
    colors = {v: f"C{i % 10}" for i, v in enumerate(variants)}
    for variant in variants:
        rows = table[table.variant == variant]
        left.scatter(rows.wall_min, rows.oof_pp, color=colors[variant], label=variant, s=40,
                     marker="s" if variant == baseline else "o")
    left.set(xlabel="wall minutes of the run", ylabel="OOF score, post-processed", title="Score against time")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    for i, row in gains.reset_index(drop=True).iterrows():
        spreads = [v for v in (row.se_raw, row.image_se_raw) if not np.isnan(v)]
        noise = max(spreads) if spreads else 0.0
        right.bar(i, row.delta_raw, color=colors[row.variant], alpha=0.5)
        right.errorbar(i, row.delta_raw, yerr=2 * noise, color="k", capsize=4)
        pairs = [float(v) for v in str(row.raw_pairs).split()] if isinstance(row.raw_pairs, str) else []
        right.scatter([i] * len(pairs), pairs, color="k", s=10, zorder=3)
    right.axhline(0, color="k", lw=0.8)
    right.set_xticks(range(len(gains)), gains.variant, rotation=20, ha="right", fontsize=8)
    right.set(ylabel=f"OOF score (0.5) minus {baseline}'s", title="Gain over the baseline, ±2 standard errors")
    right.grid(alpha=0.3, axis="y")
    return fig


def losses_table(runs: list[dict]) -> pd.DataFrame:
    """Per variant, mean over its seeds: the points of the post-processed OOF score lost by each image group
    (results/analysis/losses.json)."""
    rows = []
    for run in runs:
        path = Path(run["folder"]) / "results/analysis/losses.json"
        if path.exists():
            groups = json.loads(path.read_text())["groups"]
            rows.append({"variant": run["variant"], **{k: g["points_lost"] for k, g in groups.items()}})
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows).groupby("variant", sort=False).mean().reset_index()
    bands = sorted((c for c in table.columns if c.startswith("salt (")), key=lambda c: float(c[6:].split("%")[0]))
    rest = [c for c in table.columns if c not in ("variant", "empty", *bands)]
    return table[["variant", *(["empty"] if "empty" in table else []), *bands, *rest]]


def _run_link(folder: Path, page_dir: Path) -> str:
    """The run folder, linked to its run page where it has one (the pipeline's report target)."""
    page = folder / "results/report/run/run.html"
    if page.exists() and folder.resolve().is_relative_to(page_dir.resolve()):
        href = html.escape(str(page.resolve().relative_to(page_dir.resolve())))
        return Markup(f'<a href="{href}">{html.escape(str(folder))}</a>')
    return str(folder)


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" style="max-width:100%">'


def leaderboard_page(out: str | Path, figure: str | Path, experiment: str, description: str, baseline: str,
                     command: str, table: pd.DataFrame, summary: pd.DataFrame, gains: pd.DataFrame,
                     losses: pd.DataFrame) -> None:
    """Write the page (the figure embedded, so the page is one file)."""
    machines = sorted({f"{r.cpu} ({r.isa}; torch {r.torch_isa}, {r.precision})" + (f", GPU {r.gpu}" if r.gpu else "")
                       for r in table.itertuples()})
    commits = sorted({str(c) for c in table.commit})
    shown = table.drop(columns=["command"]).copy()
    shown["run_dir"] = [_run_link(Path(d), Path(out).parent) for d in table.run_dir]
    runs_html = _table(shown)
    gains_html = _table(gains.drop(columns=["raw_pairs"]), digits={"delta_wall_min": 1},
                        signed=("delta_raw", "delta_pp", "delta_pp_heldout", "delta_wall_min"))
    body = f"""<h1>Leaderboard: {html.escape(experiment)}</h1>
<p>{html.escape(description)}</p>
<p>Command: <code>{html.escape(command)}</code>. Baseline: <b>{html.escape(baseline)}</b>.
Machines: {html.escape('; '.join(machines))}. Commits: {html.escape(', '.join(commits))}.</p>
<h2>Variants, best first</h2>
<p>Mean over each variant's seeds (sd: their standard deviation). raw: OOF score at threshold 0.5;
pp: post-processed with the setting searched on the images scored (optimistic); pp_heldout: the setting
chosen on the other folds (a one-fold run: the other half of its images), the honest one.</p>
{_table(summary, digits={"wall_min": 1})}
<h2>Gain over {html.escape(baseline)}</h2>
<p>Paired on the same images: the difference per (seed, fold), its sd over those pairs and se = sd/&radic;pairs;
image_se: the standard error over the images' score differences. verdict: gain or loss where |delta_raw| is
more than twice the larger of se and image_se, else noise.</p>
{gains_html}
{_image(Path(figure))}
<h2>Points lost by image group</h2>
<p>Of the post-processed OOF score, the points each group of images loses (mean over seeds;
results/analysis/losses.json of each run).</p>
{_table(losses) if not losses.empty else "<p>No run has results/analysis/losses.json.</p>"}
<h2>Every run</h2>
{runs_html}
"""
    write_text(out, f"<!doctype html><html><head><meta charset='utf-8'><title>Leaderboard {html.escape(experiment)}"
                    f"</title><style>{_STYLE}</style></head><body>{body}</body></html>\n")


def save_plot(table: pd.DataFrame, gains: pd.DataFrame, baseline: str, out: str | Path) -> None:
    save_figure(plot_leaderboard(table, gains, baseline), out)
