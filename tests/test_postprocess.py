"""Post-processing chosen on out-of-fold predictions: threshold, then empty masks below min_area or min_peak."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from conftest import run_snakemake, write_config
from saltnet.data.rle import rle_decode
from saltnet.evaluation.metric import image_scores
from saltnet.evaluation.postprocess import (
    DEFAULT_MIN_PEAKS,
    DEFAULT_THRESHOLDS,
    apply_postprocess,
    choose_postprocess,
    describe_setting,
    score_grid,
    search_postprocess,
)

SIZE = 101


def square(side: int, value: float = 1.0, size: int = SIZE) -> np.ndarray:
    """(size, size) float32 with a side x side square of `value` in the top-left corner."""
    image = np.zeros((size, size), np.float32)
    image[:side, :side] = value
    return image


def blobs_on_empty_truth(n_empty: int = 6, n_salt: int = 4):
    """Empty-truth images with a spurious 8-pixel blob predicted, and salt images predicted exactly.

    At any threshold of the grid the blobs score 0 and the salt images 1; a min_area above 8 and up
    to 400 (the salt squares' area) empties just the blobs: a perfect score.
    """
    blob = np.zeros((SIZE, SIZE), np.float32)
    blob[50, 40:48] = 0.9
    probs = [blob] * n_empty + [square(20, 0.9)] * n_salt
    truth = [np.zeros((SIZE, SIZE), np.uint8)] * n_empty + [square(20).astype(np.uint8)] * n_salt
    return np.stack(probs).astype(np.float16), np.stack(truth)


def faint_halos_on_empty_truth(n_empty: int = 6, n_salt: int = 4):
    """Empty-truth images with a large faint mask predicted (30x30 at p 0.55), and small salt masks
    predicted exactly and confidently (4x4 at p 0.9).

    No min_area separates them (the faint masks are the larger), no threshold either (a cut above 0.55
    keeps the salt and drops the halos, so does min_peak: the test fixes the threshold at 0.5).
    """
    probs = [square(30, 0.55)] * n_empty + [square(4, 0.9)] * n_salt
    truth = [np.zeros((SIZE, SIZE), np.uint8)] * n_empty + [square(4).astype(np.uint8)] * n_salt
    return np.stack(probs).astype(np.float16), np.stack(truth)


# --- apply_postprocess --------------------------------------------------------------------------------

def test_apply_thresholds_strictly_then_empties_small_masks():
    probs = np.stack([square(3, 0.6), square(2, 0.6), square(3, 0.5)]).astype(np.float16)
    masks = apply_postprocess(probs, 0.5, min_area=5)
    assert masks.dtype == bool and masks.shape == probs.shape
    assert masks.sum(axis=(1, 2)).tolist() == [9, 0, 0]  # 4 px < 5: emptied; p == 0.5 is not > 0.5
    assert apply_postprocess(probs, 0.5, min_area=0).sum(axis=(1, 2)).tolist() == [9, 4, 0]
    assert apply_postprocess(probs, 0.5, min_area=9).sum(axis=(1, 2)).tolist() == [9, 0, 0]  # 9 is kept


def test_apply_empties_masks_whose_peak_is_below_min_peak():
    probs = np.stack([square(3, 0.6), square(30, 0.55), square(3, 0.7)]).astype(np.float16)
    assert apply_postprocess(probs, 0.5, 0, min_peak=0.6).sum(axis=(1, 2)).tolist() == [9, 0, 9]  # 0.6 is kept
    assert apply_postprocess(probs, 0.5, 0, min_peak=0.65).sum(axis=(1, 2)).tolist() == [0, 0, 9]
    assert apply_postprocess(probs, 0.5, 0, min_peak=0.0).sum(axis=(1, 2)).tolist() == [9, 900, 9]
    assert describe_setting({"threshold": 0.5, "min_area": 10, "min_peak": 0.6}) == \
        "threshold 0.5, min_area 10, min_peak 0.6"
    assert describe_setting({"threshold": 0.5, "min_area": 10, "min_peak": 0.0}) == "threshold 0.5, min_area 10"


def test_apply_leaves_its_input_alone_and_rejects_bad_values():
    probs = np.stack([square(3, 0.6)]).astype(np.float16)
    before = probs.copy()
    apply_postprocess(probs, 0.5, 100)
    assert np.array_equal(probs, before)
    with pytest.raises(ValueError, match="threshold"):
        apply_postprocess(probs, 1.5, 0)
    with pytest.raises(ValueError, match="min_area"):
        apply_postprocess(probs, 0.5, -1)
    with pytest.raises(ValueError, match="min_peak"):
        apply_postprocess(probs, 0.5, 0, min_peak=1.2)


# --- search on hand-made cases whose answer is known --------------------------------------------------

def test_small_blobs_on_empty_truth_are_removed_and_the_score_rises():
    probs, truth = blobs_on_empty_truth()
    found = search_postprocess(probs, truth)
    assert found["default"] == {"threshold": 0.5, "min_area": 0, "min_peak": 0.0, "score": pytest.approx(0.4)}
    # every threshold ties (probabilities are 0 or 0.9): the one nearest 0.5; the smallest min_area > 8;
    # no min_peak separates peaks of 0.9 from peaks of 0.9: the smallest, 0 (no gate)
    assert (found["threshold"], found["min_area"], found["min_peak"], found["score"]) == (0.5, 10, 0.0, 1.0)
    assert found["curve"]["threshold"] == DEFAULT_THRESHOLDS.tolist()
    assert found["curve"]["min_area"] == 10
    assert found["curve"]["score"] == [1.0] * len(DEFAULT_THRESHOLDS)
    assert found["curve"]["score_min_area_0"] == pytest.approx([0.4] * len(DEFAULT_THRESHOLDS))
    masks = apply_postprocess(probs, found["threshold"], found["min_area"])
    assert image_scores(masks, truth).mean() == 1.0


def test_best_threshold_is_found_and_ties_go_toward_one_half():
    """Salt at p = 0.7 inside a wide halo at p = 0.55: cuts in [0.55, 0.7) score 1, lower ones
    include the halo (IoU 0.25: score 0), and higher ones predict nothing (score 0)."""
    probs = square(40, 0.55)
    probs[:20, :20] = 0.7
    probs = np.stack([probs] * 3).astype(np.float16)
    truth = np.stack([square(20).astype(np.uint8)] * 3)
    found = search_postprocess(probs, truth)
    assert (found["threshold"], found["min_area"], found["score"]) == (0.56, 0, 1.0)
    assert found["default"]["score"] == 0.0
    curve = dict(zip(found["curve"]["threshold"], found["curve"]["score"]))
    assert curve[0.54] == 0.0 and curve[0.56] == curve[0.68] == 1.0 and curve[0.72] == 0.0


def test_faint_masks_on_empty_truth_are_gated_by_their_peak():
    probs, truth = faint_halos_on_empty_truth()
    found = search_postprocess(probs, truth, thresholds=[0.5])
    # min_area cannot help (emptying the 900-pixel halos empties the 16-pixel salt first); the smallest
    # min_peak above the halos' 0.55 (float16 0.5498) and not above the salt's 0.9 does
    assert (found["threshold"], found["min_area"], found["min_peak"], found["score"]) == (0.5, 0, 0.55, 1.0)
    assert found["default"]["score"] == pytest.approx(0.4)
    assert found["curve"]["min_peak"] == 0.55
    assert image_scores(apply_postprocess(probs, 0.5, 0, found["min_peak"]), truth).mean() == 1.0
    off = search_postprocess(probs, truth, thresholds=[0.5], min_peaks=[0.0])
    assert off["score"] == pytest.approx(0.4) and off["min_area"] == 0


def test_min_area_is_not_raised_past_a_true_small_mask():
    """A true 16-pixel mask predicted exactly: emptying it would cost more than the blobs gain."""
    probs, truth = blobs_on_empty_truth(n_empty=1, n_salt=0)
    probs = np.concatenate([probs, np.stack([square(4, 0.9)] * 3).astype(np.float16)])
    truth = np.concatenate([truth, np.stack([square(4).astype(np.uint8)] * 3)])
    found = search_postprocess(probs, truth, min_areas=[0, 5, 10, 15, 20, 25])
    assert (found["min_area"], found["score"]) == (10, 1.0)  # 8 < 10 <= 16


# --- closed form against brute force ------------------------------------------------------------------

def random_oof(n: int, seed: int):
    """Random rectangles of random confidence plus noise; a third of the truths empty."""
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0, 0.3, (n, SIZE, SIZE)).astype(np.float32)
    truth = np.zeros((n, SIZE, SIZE), np.uint8)
    for i in range(n):
        r0, c0 = rng.integers(0, 90, 2)
        h, w = rng.integers(1, 40, 2)
        probs[i, r0:r0 + h, c0:c0 + w] += rng.uniform(0.1, 0.7)
        if i % 3:
            dr, dc = rng.integers(0, 4, 2)  # truth shifted from the prediction by a few pixels
            truth[i, r0 + dr:r0 + dr + h, c0 + dc:c0 + dc + w] = 1
    return np.clip(probs, 0, 1).astype(np.float16), truth


def test_closed_form_equals_brute_force_on_random_data():
    probs, truth = random_oof(60, seed=0)
    thresholds = [0.1, 0.25, 0.3, 0.42, 0.5, 0.66, 0.8, 0.95]
    areas = apply_postprocess(probs, 0.5, 0).sum(axis=(1, 2))  # a mask exactly at min_area is kept
    min_areas = sorted({0, 1, 3, 17, 50, 400, 1600, SIZE * SIZE, SIZE * SIZE + 1, *areas[:8].tolist()})
    peaks = probs.max(axis=(1, 2)).astype(np.float32)
    min_peaks = sorted({0.0, 0.3, 0.55, 0.8, 1.0, *peaks[:4].tolist()})  # a mask exactly at min_peak is kept
    fast = score_grid(probs, truth, thresholds, min_areas, min_peaks)
    assert fast.shape == (len(thresholds), len(min_areas), len(min_peaks))
    slow = np.array([[[image_scores(apply_postprocess(probs, t, m, p), truth).mean() for p in min_peaks]
                      for m in min_areas] for t in thresholds])
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
    assert len(np.unique(slow.round(9))) > 10  # the grid is not flat: the check could fail
    found = search_postprocess(probs, truth, thresholds, min_areas, min_peaks)
    assert found["score"] == pytest.approx(slow.max(), abs=1e-12)
    cell = thresholds.index(found["threshold"]), min_areas.index(found["min_area"]), min_peaks.index(found["min_peak"])
    assert slow[cell] == pytest.approx(slow.max(), abs=1e-12)


@pytest.mark.parametrize("seed", [1, 2])
def test_search_agrees_with_brute_force_on_the_default_grid(seed):
    probs, truth = random_oof(30, seed)
    found = search_postprocess(probs, truth)
    best = max(image_scores(apply_postprocess(probs, t, m, p), truth).mean()
               for t in DEFAULT_THRESHOLDS[::3] for m in (0, 50, 150, 300) for p in DEFAULT_MIN_PEAKS[::4])
    assert found["score"] >= best - 1e-12  # the full grid finds at least the best of a coarser one
    masks = apply_postprocess(probs, found["threshold"], found["min_area"], found["min_peak"])
    assert image_scores(masks, truth).mean() == pytest.approx(found["score"], abs=1e-12)


# --- config values: auto searched, numbers kept -------------------------------------------------------

def test_fixed_values_are_kept_and_still_scored():
    probs, truth = blobs_on_empty_truth()
    chosen = choose_postprocess(probs, truth, threshold=0.33, min_area=0, min_peak=0)
    assert (chosen["threshold"], chosen["min_area"], chosen["min_peak"]) == (0.33, 0, 0.0)
    assert chosen["threshold_source"] == chosen["min_area_source"] == chosen["min_peak_source"] == "fixed in config"
    assert chosen["before"] == {"threshold": 0.33, "min_area": 0, "min_peak": 0.0, "oof_map_iou": pytest.approx(0.4)}
    assert chosen["after"] == {"threshold": 0.33, "min_area": 0, "min_peak": 0.0, "oof_map_iou": pytest.approx(0.4)}
    assert set(DEFAULT_THRESHOLDS.tolist()) < set(chosen["curve"]["threshold"])  # the curve is still there


def test_one_fixed_one_searched():
    probs, truth = blobs_on_empty_truth()
    chosen = choose_postprocess(probs, truth, threshold=0.7, min_area="auto")
    assert (chosen["threshold"], chosen["threshold_source"]) == (0.7, "fixed in config")
    assert (chosen["min_area"], chosen["min_area_source"]) == (10, "searched on OOF")
    assert chosen["before"]["threshold"] == 0.7 and chosen["after"]["oof_map_iou"] == 1.0
    chosen = choose_postprocess(probs, truth, threshold="auto", min_area=300)
    assert (chosen["min_area"], chosen["min_area_source"]) == (300, "fixed in config")
    assert (chosen["threshold"], chosen["threshold_source"]) == (0.5, "searched on OOF")
    assert chosen["before"]["threshold"] == 0.5
    probs, truth = faint_halos_on_empty_truth()
    chosen = choose_postprocess(probs, truth, threshold=0.5, min_area="auto", min_peak=0.95)
    assert (chosen["min_peak"], chosen["min_peak_source"]) == (0.95, "fixed in config")
    assert chosen["after"]["oof_map_iou"] == pytest.approx(0.6)  # every mask emptied: the 6 empty truths score
    chosen = choose_postprocess(probs, truth, threshold=0.5, min_area=0, min_peak="auto")
    assert (chosen["min_peak"], chosen["min_peak_source"]) == (0.55, "searched on OOF")


def test_both_auto_report_before_and_after():
    probs, truth = blobs_on_empty_truth()
    chosen = choose_postprocess(probs, truth, "auto", "auto")
    assert chosen["before"] == {"threshold": 0.5, "min_area": 0, "min_peak": 0.0, "oof_map_iou": pytest.approx(0.4)}
    assert chosen["after"] == {"threshold": 0.5, "min_area": 10, "min_peak": 0.0, "oof_map_iou": 1.0}
    assert chosen["n_images"] == 10


def test_unknown_word_is_an_error():
    probs, truth = blobs_on_empty_truth()
    with pytest.raises(ValueError, match="'atuo'"):
        choose_postprocess(probs, truth, threshold="atuo")


# --- the steps: postprocess.json feeds cv_score and submission ----------------------------------------

@pytest.fixture
def oof_files(tmp_path):
    """A packed train set of the blob case split over two folds' oof.npz, and a test ensemble."""
    from saltnet.runtime.atomic import write_npz

    probs, truth = blobs_on_empty_truth()
    ids = np.array([f"id{i:02d}" for i in range(len(probs))])
    write_npz(tmp_path / "train.npz", ids=ids, images=np.zeros_like(truth), masks=truth)
    order = np.array([0, 6, 2, 8, 4, 1, 7, 3, 9, 5])  # folds need not follow the packed order
    fold_of = np.empty(len(ids), dtype=int)
    for fold, rows in enumerate((order[:5], order[5:])):
        write_npz(tmp_path / f"oof{fold}.npz", ids=ids[rows], probs=probs[rows])
        fold_of[rows] = fold
    pd.DataFrame({"id": ids, "fold": fold_of}).to_parquet(tmp_path / "folds.parquet")
    write_npz(tmp_path / "ensemble.npz", ids=ids[::-1], probs=probs[::-1])
    pd.DataFrame({"id": ids, "rle_mask": ""}).to_csv(tmp_path / "sample_submission.csv", index=False)
    return tmp_path


def test_steps_choose_score_and_apply(oof_files):
    from saltnet.steps import cv_score_step, postprocess_step, submission_step

    d = oof_files
    oof = {0: str(d / "oof0.npz"), 1: str(d / "oof1.npz")}
    postprocess_step(str(d / "train.npz"), str(d / "folds.parquet"), oof, "auto", "auto", "auto",
                     str(d / "postprocess.json"))
    chosen = json.loads((d / "postprocess.json").read_text())
    assert (chosen["threshold"], chosen["min_area"]) == (0.5, 10)
    assert chosen["threshold_source"] == chosen["min_area_source"] == "searched on OOF"
    assert chosen["before"]["oof_map_iou"] == pytest.approx(0.4) and chosen["after"]["oof_map_iou"] == 1.0

    cv_score_step(str(d / "train.npz"), str(d / "folds.parquet"), oof, str(d / "postprocess.json"),
                  str(d / "cv.json"))
    cv = json.loads((d / "cv.json").read_text())
    assert cv["oof_map_iou"] == pytest.approx(chosen["before"]["oof_map_iou"]) and cv["n_images"] == 10
    assert cv["folds"] == [0, 1]
    assert cv["per_fold"] == {"0": pytest.approx(0.4), "1": pytest.approx(0.4)}
    post = cv["postprocessed"]
    assert (post["threshold"], post["min_area"], post["min_peak"], post["oof_map_iou"]) == (0.5, 10, 0.0, 1.0)
    assert post["per_fold"] == {"0": 1.0, "1": 1.0} and post["min_area_source"] == "searched on OOF"

    submission_step(str(d / "ensemble.npz"), str(d / "sample_submission.csv"), str(d / "postprocess.json"),
                    str(d / "submission.csv"))
    sub = pd.read_csv(d / "submission.csv", dtype=str, keep_default_na=False)
    assert sub["id"].tolist() == [f"id{i:02d}" for i in range(10)]  # sample order, not the ensemble's
    areas = [int(rle_decode(rle).sum()) for rle in sub["rle_mask"]]
    assert areas == [0] * 6 + [400] * 4  # the blobs are gone, the salt is kept


def test_fixed_config_still_writes_scores(oof_files):
    from saltnet.steps import postprocess_step

    d = oof_files
    postprocess_step(str(d / "train.npz"), str(d / "folds.parquet"), {0: str(d / "oof0.npz"), 1: str(d / "oof1.npz")},
                     0.45, 0, 0, str(d / "postprocess.json"))
    chosen = json.loads((d / "postprocess.json").read_text())
    assert (chosen["threshold"], chosen["min_area"]) == (0.45, 0)
    assert chosen["before"]["oof_map_iou"] == chosen["after"]["oof_map_iou"] == pytest.approx(0.4)


def test_one_fold_of_two_is_scored_on_its_own_images(oof_files):
    """A proxy (config folds.run: [1]) scores fold 1's images only."""
    from saltnet.steps import cv_score_step, postprocess_step

    d, oof = oof_files, {1: str(oof_files / "oof1.npz")}
    postprocess_step(str(d / "train.npz"), str(d / "folds.parquet"), oof, 0.5, 0, 0, str(d / "pp.json"))
    cv_score_step(str(d / "train.npz"), str(d / "folds.parquet"), oof, str(d / "pp.json"), str(d / "cv.json"))
    cv = json.loads((d / "cv.json").read_text())
    assert (cv["folds"], cv["n_images"], list(cv["per_fold"])) == ([1], 5, ["1"])


def test_a_fold_file_with_another_folds_ids_is_refused(oof_files):
    """Fold k's oof.npz must hold exactly fold k's ids of the fold table: here the files are swapped."""
    from saltnet.steps import postprocess_step

    d = oof_files
    swapped = {0: str(d / "oof1.npz"), 1: str(d / "oof0.npz")}
    with pytest.raises(ValueError, match=r"oof1.npz: holds 5 ids .* fold 0 of the fold table has 5; 5 are not in"):
        postprocess_step(str(d / "train.npz"), str(d / "folds.parquet"), swapped, 0.5, 0, 0, str(d / "pp.json"))
    assert not (d / "pp.json").exists()


# --- the DAG ------------------------------------------------------------------------------------------

def job_inputs(dry_run_stdout: str) -> dict[str, str]:
    """rule name -> its `input:` line, from a dry run's job blocks (one job per rule here)."""
    return dict(re.findall(r"^rule (\w+):\n    input: (.*)$", dry_run_stdout, re.M))


@pytest.mark.snakemake
def test_dry_run_puts_postprocess_before_submission_and_cv_score(tmp_path):
    write_config(tmp_path, threshold="auto", min_area="auto")
    inputs = job_inputs(run_snakemake(tmp_path, "-n").stdout)
    assert "results/predict/fold0/oof.npz" in inputs["postprocess"]
    assert "results/predict/fold1/oof.npz" in inputs["postprocess"]
    assert "results/postprocess.json" in inputs["submission"]
    assert "results/postprocess.json" in inputs["cv_score"]


@pytest.mark.snakemake
def test_misspelt_auto_is_caught_before_any_job(tmp_path):
    write_config(tmp_path, min_area="atuo")
    proc = run_snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0 and "'atuo' does not match '^auto$'" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_raw_and_postprocessed_scores_a_variant_as_rule_postprocess_reports_it():
    """A small confident blob on an empty image costs it at threshold 0.5; the search removes it."""
    from saltnet.evaluation.postprocess import raw_and_postprocessed

    masks = np.zeros((2, 101, 101), dtype=bool)
    masks[1, 20:60, 20:60] = True
    probs = np.zeros((2, 101, 101), dtype=np.float32)
    probs[0, 5:7, 5:10] = 0.7  # 10 pixels on the empty image
    probs[1][masks[1]] = 0.9
    out = raw_and_postprocessed(probs, masks)
    assert out["raw"] == pytest.approx(0.5) and out["postprocessed"] == pytest.approx(1.0)
    assert set(out["setting"]) == {"threshold", "min_area", "min_peak"}
    assert out["setting"]["min_area"] > 10 or out["setting"]["min_peak"] > 0.7
