"""The leaderboard of a sweep: one row per run from what the run recorded (its config in run_info.json,
its scores in cv_score.json, its analyses, its epochs, the sweep's timing and machine), and each
variant's gain over the baseline with its spread, paired on the same images.

The spread of a gain (variant - baseline, out-of-fold score at threshold 0.5):
- over seeds and folds: the difference is taken per (seed, fold), on that fold's images, which the two
  runs share; `sd` is its standard deviation over those pairs and `se` = sd / sqrt(pairs);
- over images: `image_se`, the standard error of the per-image score differences (all pairs pooled),
  the noise of scoring on a finite set of images even with training held fixed.
A gain is called `gain` or `loss` only where it is more than twice the larger of the two; else `noise`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from saltnet.config.resolve import INHERITED, STAGES
from saltnet.evaluation.metric import image_scores
from saltnet.evaluation.oof import load_oof, run_oof_files
from saltnet.experiments.spec import config_differences, with_schema_defaults

__all__ = ["IGNORED_KEYS", "run_record", "collect_runs", "image_scores_of", "variant_gains", "variant_summary",
           "write_leaderboard"]

IGNORED_KEYS = ("data_dir", "seed", "folds.seed")  # what a seed or the data's place changes, not a variant


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _stage_epochs(results: Path, stage: str, folds: list[int]) -> tuple[float | None, float | None]:
    """(planned, real) epochs of `stage`, the mean over the run's folds."""
    planned, real = [], []
    for fold in folds:
        run = _json(results / f"{stage}/fold{fold}/run.json")
        history = results / f"{stage}/fold{fold}/history.parquet"
        if run:
            planned.append(run.get("planned_epochs", run["epochs"]))
        if history.exists():
            real.append(len(pd.read_parquet(history)))
    mean = lambda xs: float(np.mean(xs)) if xs else None  # noqa: E731
    return mean(planned), mean(real)


def _differences(config: dict, baseline: dict) -> dict:
    """The keys `config` changes over `baseline`, both with the schema's defaults filled in; a stage's
    INHERITED key (its loss, its augment) that is the top-level one in both is named once, at the top level."""
    config, baseline = with_schema_defaults(config), with_schema_defaults(baseline)
    inherited = [f"{stage}.{key}" for key in INHERITED for stage in STAGES
                 if all(isinstance(c.get(stage), dict) and c[stage].get(key) == c.get(key) for c in (config, baseline))]
    return {k: v for k, v in config_differences(config, baseline, IGNORED_KEYS).items()
            if not any(k == name or k.startswith(name + ".") for name in inherited)}


def run_record(folder: str | Path, variant: str, seed: int | None, baseline_config: dict | None) -> dict:
    """One leaderboard row from run folder `folder`'s records."""
    folder = Path(folder)
    results = folder / "results"
    cv, info = _json(results / "cv_score.json"), _json(results / "run_info.json")
    held, sweep = _json(results / "analysis/postprocess.json"), _json(folder / "sweep_run.json")
    config = _config_of(folder, info)
    folds = [int(k) for k in cv.get("per_fold", {})]
    first = _json(results / f"train/fold{folds[0]}/run.json") if folds else {}
    machine = sweep.get("machine") or info.get("machine") or {}
    changed = _differences(config, baseline_config) if baseline_config is not None else {}
    row = {
        "variant": variant, "seed": seed,
        "changed": "; ".join(f"{k}={json.dumps(v)}" for k, v in changed.items()),
        "oof_raw": cv.get("oof_map_iou"), "oof_pp": cv.get("postprocessed", {}).get("oof_map_iou"),
        "oof_pp_heldout": held.get("held_out"), "n_images": cv.get("n_images"),
        "folds": " ".join(map(str, folds)),
    }
    for fold in folds:
        row[f"fold{fold}_raw"] = cv["per_fold"][str(fold)]
        row[f"fold{fold}_pp"] = cv["postprocessed"]["per_fold"][str(fold)]
    for stage in ("train", "finetune", "pseudo"):
        if stage != "pseudo" or (results / "pseudo").is_dir():
            row[f"{stage}_epochs_planned"], row[f"{stage}_epochs_real"] = _stage_epochs(results, stage, folds)
    kept = [_json(results / f"pseudo/fold{fold}/labels.json") for fold in folds]
    if all(kept):
        row["pseudo_kept_share"] = round(float(np.mean([k["kept_share"] for k in kept])), 4)
    row.update({
        "wall_min": round(sweep["wall_s"] / 60, 2) if "wall_s" in sweep else None,
        "resumed": sweep["invocations"] > 1 if "invocations" in sweep else None,
        "cpu": machine.get("cpu"), "cores": machine.get("cores"),
        "isa": machine.get("isa"),
        "torch_isa": first.get("cpu_capability"), "precision": first.get("precision"),
        "gpu": machine.get("gpu"), "commit": info.get("git_commit"), "run_dir": str(folder),
        "command": sweep.get("command"),
    })
    return row


def _config_of(folder: Path, info: dict | None = None) -> dict:
    """The config a run recorded (run_info.json, given or read), else the config.yaml it was given."""
    info = _json(folder / "results/run_info.json") if info is None else info
    return info.get("config") or yaml.safe_load((folder / "config.yaml").read_text())


def collect_runs(runs: list[dict], baseline: str) -> pd.DataFrame:
    """The leaderboard: `runs` ({variant, seed, folder}) as rows, each with the config keys where it differs
    from the baseline run of its seed, sorted by post-processed OOF score, best first."""
    base_configs = {r["seed"]: _config_of(Path(r["folder"])) for r in runs if r["variant"] == baseline}
    rows = [run_record(r["folder"], r["variant"], r["seed"], base_configs.get(r["seed"])) for r in runs]
    table = pd.DataFrame(rows)
    return table.sort_values(["oof_pp", "oof_raw"], ascending=False, kind="stable").reset_index(drop=True)


def image_scores_of(folder: str | Path) -> pd.DataFrame:
    """A run's out-of-fold images: id, fold and score at threshold 0.5."""
    results = Path(folder) / "results"
    oof = load_oof(results / "packed/train.npz", run_oof_files(results))
    return pd.DataFrame({"id": oof.ids, "fold": oof.fold,
                         "score": image_scores(oof.probs.astype(np.float32) > 0.5, oof.truth)})


def _same_seed(table: pd.DataFrame, seed) -> pd.Series:
    return table.seed.isna() if pd.isna(seed) else table.seed == seed


def _paired(table: pd.DataFrame, scores: dict, variant: str, baseline: str, column: str) -> tuple[list[float], int]:
    """variant - baseline of per-fold `column` scores, one value per (seed, fold) both ran on the same
    images (scores: {(variant, seed): image_scores_of}); and how many (seed, fold) pairs held other images
    (another split: not compared)."""
    diffs, unpaired = [], 0
    for seed, mine in table[table.variant == variant].groupby("seed", dropna=False):
        base = table[(table.variant == baseline) & _same_seed(table, seed)]
        if base.empty:
            continue
        seed = None if pd.isna(seed) else seed
        for col in [c for c in table.columns if c.startswith("fold") and c.endswith(f"_{column}")]:
            a, b = mine[col].iloc[0], base[col].iloc[0]
            if pd.isna(a) or pd.isna(b):
                continue
            fold = int(col.removeprefix("fold").split("_")[0])
            ids = [set(s.id[s.fold == fold]) for s in (scores.get((variant, seed)), scores.get((baseline, seed)))
                   if s is not None]
            if len(ids) == 2 and ids[0] != ids[1]:
                unpaired += 1
                continue
            diffs.append(float(a - b))
    return diffs, unpaired


def _sd(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def variant_gains(table: pd.DataFrame, runs: list[dict], baseline: str) -> pd.DataFrame:
    """Per variant other than the baseline: its gain over the baseline (raw, post-processed, held-out
    post-processed), the spread over seeds and folds and over images, and the verdict."""
    scores = {(r["variant"], r["seed"]): image_scores_of(r["folder"]) for r in runs}
    rows = []
    for variant in dict.fromkeys(table.variant):
        if variant == baseline:
            continue
        (raw, unpaired), (pp, _) = (_paired(table, scores, variant, baseline, c) for c in ("raw", "pp"))
        per_image = []
        for (name, seed), mine in scores.items():
            if name == variant and (baseline, seed) in scores:
                joined = mine.merge(scores[(baseline, seed)], on="id", suffixes=("", "_base"))
                per_image.append((joined.score - joined.score_base).to_numpy())
        diffs = np.concatenate(per_image) if per_image else np.array([])
        image_se = float(diffs.std(ddof=1) / math.sqrt(len(diffs))) if len(diffs) > 1 else math.nan
        se = _sd(raw) / math.sqrt(len(raw)) if len(raw) > 1 else math.nan
        delta = float(np.mean(raw)) if raw else math.nan
        noise = np.nanmax([se, image_se]) if not (math.isnan(se) and math.isnan(image_se)) else math.nan
        if math.isnan(delta):
            verdict = "not paired" if unpaired else "no pairs"
        elif math.isnan(noise) or abs(delta) <= 2 * noise:
            verdict = "noise"
        else:
            verdict = "gain" if delta > 0 else "loss"
        mine, base = table[table.variant == variant], table[table.variant == baseline]
        rows.append({
            "variant": variant, "changed": mine.changed.iloc[0], "pairs": len(raw), "unpaired": unpaired,
            "delta_raw": delta, "sd_raw": _sd(raw), "se_raw": se, "image_se_raw": image_se,
            "delta_pp": float(np.mean(pp)) if pp else math.nan, "sd_pp": _sd(pp),
            "delta_pp_heldout": float(mine.oof_pp_heldout.mean() - base.oof_pp_heldout.mean()),
            "delta_wall_min": float(mine.wall_min.mean() - base.wall_min.mean()),
            "verdict": verdict, "raw_pairs": " ".join(f"{d:+.4f}" for d in raw),
        })
    return pd.DataFrame(rows, columns=["variant", "changed", "pairs", "unpaired", "delta_raw", "sd_raw", "se_raw",
                                       "image_se_raw", "delta_pp", "sd_pp", "delta_pp_heldout", "delta_wall_min",
                                       "verdict", "raw_pairs"])


def variant_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per variant: runs, mean and sd over its seeds of the raw, post-processed and held-out scores, wall
    minutes; best mean post-processed score first."""
    grouped = table.groupby("variant", sort=False)
    out = grouped.agg(runs=("oof_raw", "size"), changed=("changed", "first"),
                      raw=("oof_raw", "mean"), raw_sd=("oof_raw", "std"), pp=("oof_pp", "mean"),
                      pp_sd=("oof_pp", "std"), pp_heldout=("oof_pp_heldout", "mean"), wall_min=("wall_min", "mean"))
    return out.sort_values("pp", ascending=False).reset_index()


def write_leaderboard(runs: list[dict], baseline: str, experiment: str, description: str, command: str,
                      table_csv: str, gains_csv: str, page: str, figure: str,
                      losses_csv: str | None = None) -> pd.DataFrame:
    """The sweep's outputs: the table of runs, the gains, the figure, the page, and per variant the points
    lost by each image group (losses_csv)."""
    from saltnet.experiments.page import leaderboard_page, losses_table, save_plot
    from saltnet.runtime.atomic import write_text

    table = collect_runs(runs, baseline)
    gains = variant_gains(table, runs, baseline)
    write_text(table_csv, table.to_csv(index=False))
    write_text(gains_csv, gains.to_csv(index=False))
    save_plot(table, gains, baseline, figure)
    losses = losses_table(runs)
    if losses_csv:
        write_text(losses_csv, losses.to_csv(index=False))
    leaderboard_page(page, figure, experiment, description, baseline, command, table, variant_summary(table),
                     gains, losses)
    return table
