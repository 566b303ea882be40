"""The ablation runner: each variant is a valid config of the real DAG, and fold 0 is scored right."""

import subprocess

import numpy as np
import pytest

from saltnet.evaluation.metric import image_scores
from saltnet.performance.ablate import VARIANTS, _merge_sections, parse_args, score_fold, variant_command
from saltnet.runtime.atomic import write_npz


def test_sections_given_twice_are_merged_not_replaced():
    merged = _merge_sections(["train={epochs: 5}", "finetune={epochs: 2}", "train={loss: bce}", "model=x"])
    assert merged == ["train={epochs: 5, loss: bce}", "finetune={epochs: 2}", "model=x"]


def test_the_proxy_keeps_its_own_fold_layout_unless_a_variant_sets_one():
    args = parse_args(["--data-dir", "data"])
    recipe, folds_3 = (" ".join(variant_command(name, VARIANTS[name], args)) for name in ("recipe", "folds_3"))
    assert "folds={n: 2, seed: 42}" in recipe  # not the preset's folds: proxy scores stay comparable
    assert "folds={n: 3, seed: 42}" in folds_3 and folds_3.count("folds=") == 1
    custom = " ".join(variant_command("recipe", [], parse_args(["--data-dir", "data", "--folds", "5"])))
    assert "folds={n: 5, seed: 42}" in custom
    assert "finetune={epochs: 2, swa: 0}" in recipe  # its finetune keeps the best epoch, as first measured


@pytest.mark.snakemake
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_is_a_valid_dag_of_one_fold(name, tmp_path, real_data):
    args = parse_args(["--data-dir", str(real_data), "--workdir", str(tmp_path)])
    cmd = variant_command(name, VARIANTS[name], args)
    proc = subprocess.run([*cmd[:-2], "-n", *cmd[-2:]], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = proc.stdout + proc.stderr
    assert "train_fold" in jobs and "predict_fold" in jobs and "ensemble" not in jobs
    assert "plan_budget" not in jobs  # the proxy trains its fixed epochs


def test_score_fold_is_the_competition_score_of_fold_0(tmp_path):
    rng = np.random.default_rng(0)
    masks = (rng.random((5, 101, 101)) > 0.7).astype(np.uint8)
    masks[0] = 0
    ids = np.array([f"id{i}" for i in range(5)])
    probs = np.clip(masks + rng.normal(0, 0.4, masks.shape), 0, 1).astype(np.float16)
    (tmp_path / "results/predict/fold0").mkdir(parents=True)
    write_npz(tmp_path / "results/packed/train.npz", ids=ids, images=masks, masks=masks)
    write_npz(tmp_path / "results/predict/fold0/oof.npz", ids=ids[[3, 1]], probs=probs[[3, 1]])
    expected = image_scores(probs[[3, 1]].astype(np.float32) > 0.5, masks[[3, 1]].astype(bool)).mean()
    assert score_fold(tmp_path) == pytest.approx(expected)
