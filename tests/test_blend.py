"""Blending finished runs (saltnet.inference.blend): the mean of two runs of one split, scored out-of-fold,
its test mean and submission; refusals before anything is written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from saltnet.data.rle import rle_decode
from saltnet.evaluation.metric import image_scores
from saltnet.evaluation.postprocess import apply_setting
from saltnet.inference.blend import BlendError, blend_runs

pytestmark = pytest.mark.snakemake  # the tiny DAG's finished run is one of the two runs


def _other_run(finished_run: Path, folder: Path) -> Path:
    """A copy of the finished run whose models predicted otherwise (every probability p becomes p**2), its
    predictions' rows written in reverse order: the blend must align them by id."""
    run = Path(shutil.copytree(finished_run, folder, symlinks=False))
    for path in [*run.glob("results/predict/fold*/oof.npz"), run / "results/ensemble/test.npz"]:
        with np.load(path) as npz:
            ids, probs = npz["ids"], npz["probs"]
        np.savez(path, ids=ids[::-1], probs=(probs[::-1].astype(np.float32) ** 2).astype(np.float16))
    return run


def _by_id(path: Path, ids: np.ndarray) -> np.ndarray:
    """probs (N, H, W) float32 of a predictions .npz, in the order of `ids`."""
    with np.load(path) as npz:
        row = {sample_id: k for k, sample_id in enumerate(npz["ids"])}
        return npz["probs"][[row[i] for i in ids]].astype(np.float32)


def _oof(run: Path, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ids, probs float32 and truth of a run's out-of-fold files, in fold order (or in the order of `ids`)."""
    train = np.load(run / "results/packed/train.npz")
    index = {i: k for k, i in enumerate(train["ids"])}
    files = sorted(run.glob("results/predict/fold*/oof.npz"))
    own = np.concatenate([np.load(path)["ids"] for path in files])
    ids = own if ids is None else ids
    probs = {i: p for path in files for i, p in zip(np.load(path)["ids"], np.load(path)["probs"].astype(np.float32))}
    return ids, np.stack([probs[i] for i in ids]), train["masks"][[index[i] for i in ids]].astype(bool)


def test_the_blend_is_the_mean_scored_out_of_fold_with_its_submission(finished_run, tmp_path):
    other = _other_run(finished_run, tmp_path / "other")
    report = blend_runs([finished_run, other], tmp_path / "blend")
    ids, probs_a, truth = _oof(finished_run)
    _, probs_b, _ = _oof(other, ids)
    mean = ((probs_a + probs_b) / 2).astype(np.float16)
    assert report["blend"]["raw"] == pytest.approx(image_scores(mean > 0.5, truth).mean())
    assert report["each"][str(other)]["raw"] == pytest.approx(image_scores(probs_b > 0.5, truth).mean())
    assert json.loads((tmp_path / "blend/blend.json").read_text()) == report

    blended = np.load(tmp_path / "blend/test.npz")
    test_ids = np.load(finished_run / "results/ensemble/test.npz")["ids"]
    np.testing.assert_array_equal(blended["ids"], test_ids)
    test_a, test_b = (_by_id(run / "results/ensemble/test.npz", test_ids) for run in (finished_run, other))
    expected = ((test_a + test_b) / 2).astype(np.float16)
    np.testing.assert_array_equal(blended["probs"], expected)
    assert sorted(p.name for p in (tmp_path / "blend").iterdir()) == ["blend.json", "submission.csv", "test.npz"]

    sub = pd.read_csv(tmp_path / "blend/submission.csv", dtype=str, keep_default_na=False)
    own = pd.read_csv(finished_run / "results/submission.csv", dtype=str, keep_default_na=False)
    assert sub["id"].tolist() == own["id"].tolist()  # the sample submission's order
    setting = report["blend"]["setting"]
    masks = apply_setting(expected, setting)
    row = {i: k for k, i in enumerate(blended["ids"])}
    for sample_id, rle in zip(sub["id"], sub["rle_mask"]):
        np.testing.assert_array_equal(rle_decode(rle, masks.shape[1:]), masks[row[sample_id]])


def test_an_existing_folder_is_refused_and_left_as_it_was(finished_run, tmp_path):
    out = tmp_path / "blend"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(BlendError, match="exists"):
        blend_runs([finished_run, tmp_path], out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"


def test_runs_of_another_split_are_refused_before_anything_is_written(finished_run, tmp_path):
    other = _other_run(finished_run, tmp_path / "other")
    table = pd.read_parquet(other / "results/folds.parquet")
    moved = table.loc[table["fold"] == 0, "id"].iloc[0]  # one image moved to fold 1, with its prediction
    table.loc[table["id"] == moved, "fold"] = 1
    table.to_parquet(other / "results/folds.parquet")
    files = [other / f"results/predict/fold{k}/oof.npz" for k in (0, 1)]
    (ids0, probs0), (ids1, probs1) = ((np.load(f)["ids"], np.load(f)["probs"]) for f in files)
    keep = ids0 != moved
    np.savez(files[0], ids=ids0[keep], probs=probs0[keep])
    np.savez(files[1], ids=np.append(ids1, moved), probs=np.concatenate([probs1, probs0[~keep]]))
    with pytest.raises(BlendError, match=f"{other}: its fold table"):
        blend_runs([finished_run, other], tmp_path / "blend")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]  # no folder, no staging left


def test_a_failure_while_writing_leaves_no_folder(finished_run, tmp_path, monkeypatch):
    import saltnet.inference.blend as blend

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    other = _other_run(finished_run, tmp_path / "other")
    monkeypatch.setattr(blend, "write_submission_csv", full_disk)
    with pytest.raises(OSError, match="No space"):
        blend_runs([finished_run, other], tmp_path / "blend")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]


def test_an_unfinished_run_and_a_single_run_are_refused(finished_run, tmp_path):
    other = _other_run(finished_run, tmp_path / "other")
    (other / "results/submission.csv").unlink()
    with pytest.raises(BlendError, match="results/submission.csv"):
        blend_runs([finished_run, other], tmp_path / "blend")
    with pytest.raises(BlendError, match="two runs or more"):
        blend_runs([finished_run], tmp_path / "blend")
    with pytest.raises(BlendError, match="named twice"):
        blend_runs([finished_run, finished_run], tmp_path / "blend")
    assert not (tmp_path / "blend").exists()


def test_the_command_line_prints_the_scores_and_names_a_refusal(finished_run, tmp_path):
    other = _other_run(finished_run, tmp_path / "other")
    cmd = [sys.executable, "-m", "saltnet.inference.blend", str(finished_run), str(other)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([*cmd, "--out", str(tmp_path / "blend")], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "blend: out-of-fold" in proc.stdout and (tmp_path / "blend/submission.csv").is_file()
    proc = subprocess.run([*cmd, "--out", str(tmp_path / "blend")], capture_output=True, text=True, env=env)
    assert proc.returncode != 0 and f"blend: {tmp_path / 'blend'}: exists" in proc.stderr
