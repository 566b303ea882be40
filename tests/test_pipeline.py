"""The real `snakemake` on the tiny demo config: DAG shape, lint, outputs, reproducibility."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import DAG_TARGETS, REPO, SNAKEMAKE, TINY_CONFIG, run_snakemake, write_config
from saltnet.data.rle import rle_decode


def count_jobs(dry_run_stdout: str) -> dict[str, int]:
    table = re.search(r"job\s+count\n[-\s]+\n(.*?)\ntotal", dry_run_stdout, re.S).group(1)
    return {name: int(n) for name, n in (line.split() for line in table.splitlines())}


@pytest.mark.snakemake
def test_dry_run_has_a_job_per_fold(tmp_path):
    write_config(tmp_path, folds={"n": 3, "seed": 1})
    jobs = count_jobs(run_snakemake(tmp_path, "-n").stdout)
    assert jobs["train_fold"] == jobs["finetune_fold"] == jobs["predict_fold"] == 3
    assert jobs["ensemble"] == jobs["submission"] == jobs["split_folds"] == 1


@pytest.mark.snakemake
def test_lint_is_clean():
    import subprocess

    proc = subprocess.run([str(SNAKEMAKE), "--lint"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Lints for" not in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]


@pytest.mark.snakemake
def test_submission_is_valid(finished_run):
    sub = pd.read_csv(finished_run / "results/submission.csv", dtype=str, keep_default_na=False)
    sample = pd.read_csv(finished_run / "results/demo_data/sample_submission.csv", dtype=str)
    assert list(sub.columns) == ["id", "rle_mask"]
    assert sub["id"].tolist() == sample["id"].tolist()
    for rle in sub["rle_mask"]:
        rle_decode(rle)
    header = (finished_run / "results/submission.csv").read_text().splitlines()[0]
    assert header == "id,rle_mask"


@pytest.mark.snakemake
def test_progress_reaches_the_terminal(finished_run):
    """Where the user looks while snakemake runs in the foreground: a line per epoch of each fold and stage
    (fold, stage, epoch k/N, the metric, seconds, time left) and the prediction's progress; the logs keep all."""
    terminal = (finished_run / "terminal.txt").read_text()
    for fold in (0, 1):
        for stage, size in (("train", 48), ("finetune", 64)):
            pattern = rf"fold {fold} {stage} {size} px, epoch 1/1: .*map_iou=[\d.]+.* \| [\d.]+ s, stage done"
            line = re.search(pattern, terminal)
            assert line, f"no epoch line of fold {fold} {stage}:\n{terminal[-3000:]}"
        assert re.search(rf"fold {fold} test: 8/8 images \(100%\)", terminal)
        assert f"fold {fold} train 48 px, epoch 1/1" in (finished_run / f"logs/train_fold/fold{fold}.log").read_text()


@pytest.mark.snakemake
def test_scores_history_and_provenance(finished_run):
    cv = json.loads((finished_run / "results/cv_score.json").read_text())
    assert set(cv["per_fold"]) == {"0", "1"} and cv["n_images"] == 24 and 0.0 <= cv["oof_map_iou"] <= 1.0
    for stage in ("train", "finetune"):
        history = pd.read_parquet(finished_run / f"results/{stage}/fold0/history.parquet")
        assert history["epoch"].tolist() == [0] and {"train_loss", "valid_loss", "map_iou"} <= set(history)
    oof = [np.load(finished_run / f"results/predict/fold{k}/oof.npz")["ids"] for k in (0, 1)]
    table = pd.read_parquet(finished_run / "results/folds.parquet")
    for k, ids in enumerate(oof):  # fold k's out-of-fold file holds exactly fold k's images, each once
        assert len(set(ids)) == len(ids) and set(ids) == set(table.loc[table["fold"] == k, "id"])
    probs = np.load(finished_run / "results/ensemble/test.npz")["probs"]
    assert probs.dtype == np.float16 and probs.shape == (8, 101, 101) and 0 <= probs.min() <= probs.max() <= 1
    info = json.loads((finished_run / "results/run_info.json").read_text())
    assert info["config"]["folds"]["n"] == 2 and info["packages"]["torch"] == "2.14.1" and "git_commit" in info


def _unprobed(text: str) -> str:
    """`text` without the bf16 probe's measured speed-up, which differs from one process to the next
    (1.6-3.0x in one run on a CPU with native bf16): the choice and its reason must match, not the timing."""
    return re.sub(r"bf16 step [0-9.]+x the speed", "bf16 step (timed)x the speed", text)


@pytest.mark.snakemake
def test_precision_choice_reaches_every_job(finished_run):
    """bf16: auto is resolved in each job, training and prediction alike, and said with its reason."""
    from saltnet.runtime.precision import resolve_bf16

    expected = resolve_bf16("auto", torch.device("cpu"))
    for log in ("train_fold/fold0.log", "finetune_fold/fold1.log", "predict_fold/fold0.log"):
        text = (finished_run / "logs" / log).read_text()
        assert _unprobed(f"precision {expected.name} ({expected.reason})") in _unprobed(text), log
    run = json.loads((finished_run / "results/train/fold0/run.json").read_text())
    assert run["precision"] == expected.name and _unprobed(run["precision_reason"]) == _unprobed(expected.reason)
    assert run["threads"] == 1 and run["stage"] == "train" and run["model"] == "resunet_scse"


@pytest.mark.parametrize("preset", sorted(p.name for p in (REPO / "workflow/presets").glob("*.yaml")))
def test_shipped_presets_follow_the_schema(preset):
    from snakemake.utils import validate

    from saltnet.config.resolve import resolve_config

    config = resolve_config([REPO / "workflow/presets" / preset], {"data_dir": "demo"})
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))  # Snakemake's own check agrees


@pytest.mark.snakemake
def test_same_seed_same_submission(finished_run, tmp_path):
    """On the CPU a second run with the same config writes byte-identical folds and submission."""
    write_config(tmp_path)
    run_snakemake(tmp_path, *DAG_TARGETS)
    for name in ("results/submission.csv", "results/folds.parquet", "results/cv_score.json"):
        assert (tmp_path / name).read_bytes() == (finished_run / name).read_bytes(), name


@pytest.mark.snakemake
def test_nothing_to_do_on_rerun(finished_run):
    proc = run_snakemake(finished_run, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.snakemake
def test_the_tta_analysis_predicts_the_folds_again_with_each_view(finished_run, tmp_path):
    """Target results/analysis/tta.json of a finished run: every view scored on the run's own out-of-fold
    images; the flip view is what predict_fold did, so it scores as the run's oof.npz."""
    import shutil

    run = shutil.copytree(finished_run, tmp_path / "run", symlinks=True)  # the fixture stays as it was
    run_snakemake(run, "results/analysis/tta.json")
    found = json.loads((run / "results/analysis/tta.json").read_text())
    views = {"finetune_plain", "finetune_flip", "finetune_flip_h8", "train_flip", "two_stages_flip", "run_oof"}
    assert set(found) == views
    assert all(0 <= found[v]["raw"] <= 1 and 0 <= found[v]["postprocessed"] <= 1 for v in views)
    assert all(found[v]["seconds"] > 0 for v in views - {"run_oof"})
    assert found["finetune_flip"]["raw"] == pytest.approx(found["run_oof"]["raw"], abs=0.05)


@pytest.mark.slow  # the suite's time on a 2-core AVX2-only CPU: docs/measured.md#demo-and-test-suite-timings
@pytest.mark.snakemake
def test_the_snapshot_analysis_compares_the_final_model_with_averages(tmp_path):
    """With snapshots kept (config snapshots: 2), target results/analysis/snapshots.json scores the final
    model, the mean of the last 2 snapshots' predictions and of their weights on the out-of-fold images."""
    write_config(tmp_path, snapshots=2, finetune={**TINY_CONFIG["finetune"], "epochs": 2})
    run_snakemake(tmp_path, "results/analysis/snapshots.json")
    found = json.loads((tmp_path / "results/analysis/snapshots.json").read_text())
    assert found["stage"] == "finetune" and {"final", "ensemble_2", "swa_2"} <= set(found)
    assert all(0 <= found[k]["raw"] <= 1 for k in ("final", "ensemble_2", "swa_2"))
