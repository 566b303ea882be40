"""Blend finished runs of one fold split: the mean of their probabilities, scored out-of-fold, and its submission.

    python -m saltnet.inference.blend RUN RUN [RUN ...] --out FOLDER

Runs of the same split (other training seeds, or other recipes) predict each training image with models
that never saw it, so the mean of their out-of-fold probabilities is an honest out-of-fold score of the
blend, as the fold ensemble is of the folds' models on the test set. Averaging independently trained
models is what every top TGS team submitted (e.g. 1st place, ybabakhin/kaggle_salt_bes_phalanx; 4th
place, SeuTao/TGS-Salt-Identification, over seeds and folds).

FOLDER must not exist; it is written whole or not at all:
- blend.json: each run's and the blend's out-of-fold score raw (threshold 0.5), post-processed (searched
  on the images it scores, as rule postprocess does) and held-out post-processed (chosen on the other
  folds, as rule analysis_postprocess does), per fold, and the points lost per coverage group;
- test.npz: the mean of the runs' results/ensemble/test.npz (ids, probs float16);
- submission.csv: that mean post-processed with the setting chosen on the blend's out-of-fold
  predictions, in the id order of the first run's submission.
"""

from __future__ import annotations

import argparse
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from saltnet.evaluation.analyses import coverage_losses, heldout_postprocess
from saltnet.evaluation.oof import OofData, load_oof, run_oof_files
from saltnet.evaluation.postprocess import apply_setting
from saltnet.inference.ensemble import write_fold_mean
from saltnet.inference.submission import build_submission, validate_submission, write_submission_csv
from saltnet.runtime.atomic import write_json

__all__ = ["BlendError", "RunOutputs", "load_run", "check_same_split", "mean_oof", "oof_summary", "blend_runs"]


class BlendError(ValueError):
    """The runs cannot be blended; the message names the run and why."""


@dataclass
class RunOutputs:
    """What a finished run's results/ hold for a blend: its folder, fold table (id, fold), out-of-fold
    predictions joined to their masks (N images), the fold ensemble's test probabilities (a .npz of ids
    (M,) and probs (M, 101, 101)) with their ids, and its submission's ids in their order."""

    folder: Path
    folds: pd.DataFrame
    oof: OofData
    test: Path
    test_ids: np.ndarray
    submission_ids: list[str]


def _need(path: Path, run: Path) -> Path:
    """path, if it is a file; else BlendError naming it within the run."""
    if not path.is_file():
        raise BlendError(f"{run}: no {path.relative_to(run)} (not a finished run: run its DAG to the end first)")
    return path


def _npz_ids(path: Path) -> np.ndarray:
    """The ids array of a predictions .npz, read alone (small)."""
    with np.load(path, allow_pickle=False) as npz:
        return npz["ids"]


def load_run(run: str | Path) -> RunOutputs:
    """A finished run's folder (the --directory it ran in) -> its RunOutputs; BlendError naming the run and
    the file if one is missing or unreadable."""
    run = Path(run)
    results = run / "results"
    try:
        folds = pd.read_parquet(_need(results / "folds.parquet", run))
        files = run_oof_files(results)
        if not files:
            raise BlendError(f"{run}: no results/predict/fold*/oof.npz (not a finished run: run its DAG to the end)")
        oof = load_oof(_need(results / "packed" / "train.npz", run), files, folds)
        test = _need(results / "ensemble" / "test.npz", run)
        submission = pd.read_csv(_need(results / "submission.csv", run), dtype=str, keep_default_na=False)
        return RunOutputs(run, folds, oof, test, _npz_ids(test), submission["id"].tolist())
    except BlendError:
        raise
    except (ValueError, KeyError, OSError) as err:
        raise BlendError(f"{run}: {type(err).__name__}: {err}") from err


def _split(folds: pd.DataFrame) -> pd.DataFrame:
    """A fold table's (id, fold) pairs in id order, types fixed, for comparison."""
    table = pd.DataFrame({"id": folds["id"].astype(str), "fold": folds["fold"].astype(np.int64)})
    return table.sort_values("id").reset_index(drop=True)


def check_same_split(runs: list[RunOutputs]) -> None:
    """BlendError naming the first run that repeats another, or whose fold table, out-of-fold images or test
    ids differ from the first run's: a blend's per-fold scores and its held-out post-processing (chosen on
    the other folds) need one split, and its test mean one test set."""
    first = runs[0]
    seen = set()
    for run in runs:
        if run.folder.resolve() in seen:
            raise BlendError(f"{run.folder}: named twice; a blend of a run with itself is that run")
        seen.add(run.folder.resolve())
    table = _split(first.folds)
    for run in runs[1:]:
        if not _split(run.folds).equals(table):
            raise BlendError(f"{run.folder}: its fold table (results/folds.parquet) differs from {first.folder}'s; "
                             "blend runs of one split (config folds)")
        # each fold's ids are the table's (load_oof checks them), so the same table leaves the folds to compare
        if not np.array_equal(np.unique(run.oof.fold), np.unique(first.oof.fold)):
            raise BlendError(f"{run.folder}: results/predict/fold*/oof.npz predict other folds than {first.folder}'s")
        if sorted(run.test_ids.tolist()) != sorted(first.test_ids.tolist()):
            raise BlendError(f"{run.folder}: results/ensemble/test.npz predicts other test ids than {first.folder}'s")


def mean_oof(oofs: list[OofData]) -> OofData:
    """The mean of out-of-fold predictions of the same images, each aligned by id to the first's order
    (float32 sum, then float16, as the fold ensemble): probs (N, H, W)."""
    first = oofs[0]
    total = np.zeros(first.probs.shape, dtype=np.float32)
    for oof in oofs:
        row = {sample_id: k for k, sample_id in enumerate(oof.ids)}
        total += oof.probs[[row[sample_id] for sample_id in first.ids]]
    probs = (total / len(oofs)).astype(np.float16)
    return OofData(first.ids, first.fold, first.images, probs, first.truth)


def oof_summary(oof: OofData) -> dict:
    """Raw, post-processed and held-out post-processed scores (all 'auto', as the presets), per fold, the
    setting chosen on all images, and the points lost per coverage group under it."""
    held = heldout_postprocess(oof)
    losses = coverage_losses(oof, held["setting"])
    return {"raw": held["raw"], "post_processed": held["in_sample"], "held_out": held["held_out"],
            "setting": held["setting"],
            "folds": {name: {"raw": part["raw"], "held_out": part["held_out"]} for name, part in held["parts"].items()},
            "points_lost": {group: v["points_lost"] for group, v in losses["groups"].items()},
            "salt_predicted_empty": losses["salt_predicted_empty"]}


def _aligned_tests(runs: list[RunOutputs], folder: Path) -> list[Path]:
    """The runs' test.npz paths, a run whose ids are in another order than the first's rewritten in that
    order into folder (write_fold_mean needs one order)."""
    paths = []
    for k, run in enumerate(runs):
        if np.array_equal(run.test_ids, runs[0].test_ids):
            paths.append(run.test)
            continue
        with np.load(run.test, allow_pickle=False) as npz:
            probs = npz["probs"]
        row = {sample_id: i for i, sample_id in enumerate(run.test_ids)}
        paths.append(folder / f"aligned{k}.npz")
        np.savez(paths[-1], ids=runs[0].test_ids, probs=probs[[row[i] for i in runs[0].test_ids]])
    return paths


def _write(runs: list[RunOutputs], blend: OofData, folder: Path) -> dict:
    """Write blend.json, test.npz and submission.csv into folder; returns blend.json's content."""
    summary = oof_summary(blend)
    chosen = summary["setting"]
    aligned = _aligned_tests(runs, folder)
    write_fold_mean(aligned, folder / "test.npz")
    for path in aligned:
        if path.parent == folder:
            path.unlink()
    with np.load(folder / "test.npz", allow_pickle=False) as npz:
        ids, probs = npz["ids"], npz["probs"]
    sub = build_submission(ids, apply_setting(probs, chosen))
    validate_submission(sub, runs[0].submission_ids, probs.shape[1:])
    write_submission_csv(sub.set_index("id").loc[runs[0].submission_ids].reset_index(), folder / "submission.csv")
    report = {"runs": [str(run.folder) for run in runs],
              "each": {str(run.folder): oof_summary(run.oof) for run in runs},
              "blend": summary}
    write_json(folder / "blend.json", report)
    return report


def blend_runs(runs: list[str | Path], out: str | Path) -> dict:
    """Blend the finished runs `runs` (two or more, one split) into the new folder `out` (see the module's
    docstring); returns blend.json's content. BlendError before anything is written if `out` exists, a run
    is unfinished or the splits differ; `out` appears whole or not at all."""
    out = Path(out)
    if len(runs) < 2:
        raise BlendError(f"blend needs two runs or more, got {len(runs)}")
    if out.exists():
        raise BlendError(f"{out}: exists; name a new folder (nothing of it is overwritten)")
    loaded = [load_run(run) for run in runs]
    check_same_split(loaded)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.tmp"
    staging.mkdir()  # the umask's mode, as the blend folder will have
    try:
        report = _write(loaded, mean_oof([run.oof for run in loaded]), staging)
        if out.exists():  # made meanwhile: left as it is
            raise BlendError(f"{out}: appeared while blending; the blend is not written")
        os.rename(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="finished run folders of one split (each its --directory)")
    parser.add_argument("--out", required=True, help="a new folder for blend.json, test.npz and submission.csv")
    args = parser.parse_args(argv)
    try:
        report = blend_runs(args.runs, args.out)
    except BlendError as err:
        raise SystemExit(f"blend: {err}") from None
    for name, summary in [*report["each"].items(), ("blend", report["blend"])]:
        print(f"{name}: out-of-fold {summary['raw']:.4f} raw, {summary['post_processed']:.4f} post-processed, "
              f"{summary['held_out']:.4f} held-out")
    print(f"wrote {args.out}/blend.json, test.npz, submission.csv")


if __name__ == "__main__":
    main()
