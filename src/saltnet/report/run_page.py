"""'The run' page: what ran, where and how fast, and what is missing: config, package versions, git
commit (run_info.json), device, precision and threads per fold and stage (run.json), per-job time and
memory (benchmarks/*/*.tsv), the benchmark table (bench.json) where one was made, and with config
budget_minutes the plan (budget.json) next to what the stages then took."""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

import pandas as pd
import yaml

from saltnet.report.figures import new_figure, save_figure
from saltnet.runtime.atomic import write_text

__all__ = ["read_benchmarks", "fold_runs", "missing_outputs", "run_page", "plot_job_times", "run_report"]

_STYLE = ("body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}"
          "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left;font-size:90%}th{background:#eee}"
          "pre{background:#f6f6f6;padding:.8em;font-size:85%}.missing{color:#b22222}")
_BENCH_COLUMNS = {"s": "seconds", "h:m:s": "h:m:s", "max_rss": "max RSS (MB)", "mean_load": "mean load (%)",
                  "cpu_time": "CPU time (s)"}


def read_benchmarks(paths: list[str | Path]) -> pd.DataFrame:
    """One row per Snakemake benchmark file that exists (benchmarks/<rule>/<job>.tsv), its first repeat."""
    rows = []
    for path in map(Path, paths):
        if path.is_file():
            record = pd.read_csv(path, sep="\t").iloc[0]
            rows.append({"rule": path.parent.name, "job": path.stem,
                         **{name: record[key] for key, name in _BENCH_COLUMNS.items() if key in record}})
    return pd.DataFrame(rows, columns=["rule", "job", *_BENCH_COLUMNS.values()])


def fold_runs(runs: dict[str, dict[int, str]]) -> pd.DataFrame:
    """One row per run.json that exists (runs: {stage: {fold: path}}): where and how each stage ran."""
    keys = ["size", "epochs", "best_epoch", "best_map_iou", "device", "precision", "precision_reason",
            "threads", "seconds", "epoch_seconds", "resumed_from_epoch", "swa", "pseudo_images"]
    rows = []
    for stage, by_fold in runs.items():
        for fold, path in sorted(by_fold.items()):
            if Path(path).is_file():
                info = json.loads(Path(path).read_text())
                rows.append({"fold": int(fold), "stage": stage, **{k: info.get(k) for k in keys}})
    frame = pd.DataFrame(rows, columns=["fold", "stage", *keys]).sort_values("fold", kind="stable")
    frame["best_epoch"] = frame["best_epoch"].map(lambda e: None if e is None or pd.isna(e) else int(e) + 1)
    return frame.rename(columns={"best_epoch": "best epoch (1-based)"})


def missing_outputs(expected: dict[str, str]) -> list[str]:
    """'what: path' for each expected output that does not exist (expected: {what: path})."""
    return [f"{what}: {path}" for what, path in expected.items() if not Path(path).exists()]


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p>none</p>"
    return frame.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}", border=0)


def _bench_section(bench: str | Path | None) -> str:
    if not bench or not Path(bench).is_file():
        return "<p>no benchmark table (make one with <code>make bench</code>: results/bench.json)</p>"
    rows = pd.DataFrame(json.loads(Path(bench).read_text()))
    machine = rows.iloc[0] if len(rows) else {}
    line = ", ".join(f"{k}: {machine[k]}" for k in ("device", "cpu_model", "cpu_capability", "native_bf16",
                                                    "threads", "load_avg_1m") if k in machine)
    cols = [c for c in ("model", "mode", "precision", "size", "input_size", "batch_size", "img_per_s", "steps",
                        "seconds", "ratio_to_smp") if c in rows]
    return f"<p>{html.escape(line)}</p>" + _table(rows[cols])


def _budget_section(budget: str | Path | None, folds: pd.DataFrame, replans: list[str | Path] = ()) -> str:
    """The plan of rule plan_budget, each stage's replan (rule replan), and per stage its planned epochs and
    seconds against what its folds really took."""
    if not budget or not Path(budget).is_file():
        return "<p>no time budget (config budget_minutes: null): the configured epochs were trained</p>"
    plan = json.loads(Path(budget).read_text())
    read = [json.loads(Path(p).read_text()) for p in replans if Path(p).is_file()]
    again = {r["stage"]: r for r in read if "stage" in r and "round" not in r}
    rounds = [r for r in read if "round" in r]  # rule replan_round: a later round of the last stage's folds
    line = (f"budget {plan['budget_minutes']:g} min: every stage's epochs scaled by {plan['scale']:.3g}; "
            f"{plan['parallel_folds']} fold(s) side by side with {plan['fold_threads']} thread(s) each, "
            f"{plan['rounds']} round(s); whole DAG predicted {plan['predicted_seconds'] / 60:.1f} min (prediction "
            f"{plan['predict_seconds']:.0f} s in all, {plan.get('predict_models', 1)} model(s) per fold, "
            f"{plan['reserve_seconds']:.0f} s reserved, planning "
            f"{plan['planning_seconds']:.0f} s); CPU {plan.get('machine', {}).get('cpu_model', '?')}")
    if plan.get("busy"):
        line += (f". The CPU was busy when it was measured (1-minute load average {plan['load_avg_1m']:g}): "
                 "other processes slowed the timed steps; the replans correct the later stages")
    if plan.get("advice"):
        line += f". Advice: {plan['advice']}"
    for stage, replan in again.items():
        line += (f". Replanned after the stage before it ({replan['speed_ratio']:.2f}x its planned epoch): "
                 f"{stage} {replan['epochs'][stage]} epochs of {replan['epoch_seconds']:.0f} s, whole DAG then "
                 f"predicted {replan['predicted_seconds'] / 60:.1f} min")
    for replan in rounds:
        name = replan["stage"]
        line += (f". Replanned before round {replan['round']} of its folds ({replan['speed_ratio']:.2f}x its planned "
                 f"epoch in the rounds before): {name} folds {replan['folds']} {replan['epochs'][name]} "
                 f"epochs of {replan['epoch_seconds']:.0f} s, whole DAG then predicted "
                 f"{replan['predicted_seconds'] / 60:.1f} min")
    if "started" in plan:  # the run page is among the DAG's last jobs
        line += f". This page was written {(time.time() - plan['started']) / 60:.1f} min after planning began"
    later = {fold for replan in rounds for fold in replan["folds"]}
    rows = []
    for stage in plan["stages"]:
        name, replan = stage["stage"], again.get(stage["stage"])
        n = replan["epochs"][name] if replan else plan["epochs"][name]
        epoch = replan["epoch_seconds"] if replan else stage["epoch_seconds"]
        runs = folds.loc[folds["stage"] == name]
        mine = [r for r in rounds if r["stage"] == name]
        label = f"{name}, round 1" if mine else name
        rows.append(_stage_row(label, stage["epochs"], n, epoch, runs.loc[~runs["fold"].isin(later)] if mine else runs,
                               replan))
        for again_round in mine:  # the folds of a later round, with their own replan
            rows.append(_stage_row(f"{name}, round {again_round['round']}", stage["epochs"],
                                   again_round["epochs"][name], again_round["epoch_seconds"],
                                   runs.loc[runs["fold"].isin(again_round["folds"])], again_round))
    return f"<p>{html.escape(line)}</p>" + _table(pd.DataFrame(rows))


def _stage_row(label: str, configured: int, n: int, epoch: float, runs: pd.DataFrame, replan: dict | None) -> dict:
    """One row of the budget table: a stage (or a round of its folds), planned against what its folds took."""
    real = runs["epoch_seconds"].dropna() if "epoch_seconds" in runs else pd.Series(dtype=float)
    return {"stage": label, "configured epochs": configured, "planned epochs": n,
            "trained epochs": runs["epochs"].min() if len(runs) else None,
            "predicted epoch (s)": epoch, "real epoch (s), slowest fold": real.max() if len(real) else None,
            "predicted stage (s)": n * epoch,
            "slowest fold took (s)": runs["seconds"].max() if len(runs) else None,
            "time limit per fold (s)": replan.get("time_limit_s") if replan else None}


def _provenance(info: dict) -> str:
    machine = info.get("machine") or {}
    facts = {"git commit": info.get("git_commit"), "CPU": machine.get("cpu"), "CPU vector ISA": machine.get("isa"),
             "cores": machine.get("cores"), "GPU": machine.get("gpu"), "python": info.get("python"),
             "platform": info.get("platform"), "CUDA available": info.get("cuda_available")}
    packages = pd.DataFrame(sorted((info.get("packages") or {}).items()), columns=["package", "version"])
    return _table(pd.DataFrame(list(facts.items()), columns=["", "value"])) + _table(packages)


def _analysis_section(paths: list[str | Path]) -> str:
    """The analyses of results/analysis/ that exist, each as a table."""
    parts = []
    for path in map(Path, paths):
        if not path.is_file():
            continue
        found = json.loads(path.read_text())
        if path.stem == "postprocess":
            frame = pd.DataFrame([{k: found[k] for k in ("n_images", "raw", "in_sample", "held_out", "optimism")}])
            about = ("post-processing chosen on the images it scores (in_sample, what cv_score reports) and on "
                     "the other folds' images (held_out)")
        elif path.stem == "losses":
            frame = pd.DataFrame([{"group": k, **g} for k, g in found["groups"].items()])
            about = "points of the post-processed OOF score lost by each group of images"
        else:
            frame = pd.DataFrame([{"variant": k, **{c: v.get(c) for c in ("raw", "postprocessed", "seconds")}}
                                  for k, v in found.items() if isinstance(v, dict) and "raw" in v])
            about = "the out-of-fold images predicted again: raw (threshold 0.5) and post-processed scores"
        parts.append(f"<h3>{html.escape(path.name)}</h3><p>{about}</p>{_table(frame)}")
    return "".join(parts) or "<p>none made (results/analysis/).</p>"


def run_page(run_info: dict, folds: pd.DataFrame, jobs: pd.DataFrame, missing: list[str],
             bench: str | Path | None = None, budget: str | Path | None = None,
             replans: list[str | Path] = (), analyses: list[str | Path] = ()) -> str:
    """The page as one self-contained HTML document (tables and the config as YAML)."""
    if missing:
        items = "".join(f"<li>{html.escape(m)}</li>" for m in missing)
        status = (f"<p class='missing'>{len(missing)} expected output(s) missing (a failed or unfinished job: "
                  f"see logs/&lt;rule&gt;/):</p><ul class='missing'>{items}</ul>")
    else:
        status = "<p>every expected output exists.</p>"
    config = html.escape(yaml.safe_dump(run_info.get("config", {}), sort_keys=False))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>The run</title><style>{_STYLE}</style>"
            f"</head><body><h1>The run</h1>{status}"
            f"<h2>Folds: device, precision, threads, time</h2>{_table(folds)}"
            f"<h2>Time budget (results/budget.json)</h2>{_budget_section(budget, folds, replans)}"
            f"<h2>Jobs: time and memory (benchmarks/)</h2>{_table(jobs)}"
            f"<h2>Analyses (results/analysis/)</h2>{_analysis_section(analyses)}"
            f"<h2>Benchmark (results/bench.json)</h2>{_bench_section(bench)}"
            f"<h2>Code and packages</h2>{_provenance(run_info)}"
            f"<h2>Config</h2><pre>{config}</pre></body></html>\n")


def plot_job_times(jobs: pd.DataFrame):
    """Figure: wall time and peak memory of every benchmarked job, one bar each."""
    fig, (time_ax, mem_ax) = new_figure(12, max(2.5, 0.35 * len(jobs) + 1.2), ncols=2, sharey=True)
    labels = [f"{r} {j}" for r, j in zip(jobs["rule"], jobs["job"])]
    time_ax.barh(labels, jobs["seconds"], color="tab:blue")
    mem_ax.barh(labels, jobs["max RSS (MB)"], color="tab:purple")
    time_ax.set(xlabel="wall time (s)", title=f"{len(jobs)} job(s), {jobs['seconds'].sum():.0f} s in all")
    mem_ax.set(xlabel="peak resident memory (MB)", title="memory")
    time_ax.invert_yaxis()
    for ax in (time_ax, mem_ax):
        ax.grid(axis="x", alpha=0.3)
    return fig


def run_report(run_info: str | Path, runs: dict[str, dict[int, str]], benchmarks: list[str | Path],
               expected: dict[str, str], out_html: str | Path, out_times: str | Path,
               bench: str | Path | None = None, budget: str | Path | None = None,
               replans: list[str | Path] = (), analyses: list[str | Path] = ()) -> list[str]:
    """Write the run page and the job-times PNG from what exists (runs: {stage: {fold: run.json}},
    benchmarks: Snakemake benchmark files, expected: {what: path}, budget: budget.json or None, replans:
    the budget_{stage}.json of rule replan, analyses: results/analysis/*.json);
    returns the missing outputs."""
    info = json.loads(Path(run_info).read_text())
    jobs, missing = read_benchmarks(benchmarks), missing_outputs(expected)
    write_text(out_html, run_page(info, fold_runs(runs), jobs, missing, bench, budget, replans, analyses))
    save_figure(plot_job_times(jobs), out_times)
    return missing
