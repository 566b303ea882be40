"""One function per pipeline step, from input paths to output paths; the rule scripts call these.

Each can be run by hand (e.g. to train one fold in a notebook) and never imports snakemake. The steps
of the light rules (packing, folds, ensemble, post-processing, submission, scores) import no torch:
the training and prediction steps import it when they run.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from saltnet.config.settings import TrainSettings
from saltnet.data.folds import fold_indices, split_folds
from saltnet.data.pack import load_packed, pack_competition
from saltnet.evaluation.metric import image_scores
from saltnet.evaluation.oof import load_oof
from saltnet.evaluation.postprocess import apply_setting, choose_postprocess, describe_setting
from saltnet.inference.ensemble import write_fold_mean
from saltnet.inference.submission import build_submission, validate_submission, write_submission_csv
from saltnet.runtime.atomic import write_json, write_npz, write_parquet

__all__ = ["pack_step", "folds_step", "budget_step", "replan_step", "replan_round_step", "planned_epochs",
           "planned_time_limit", "planned_deadline",
           "train_step", "predict_step", "pseudo_labels_step", "ensemble_step", "postprocess_step", "submission_step",
           "cv_score_step", "heldout_postprocess_step", "coverage_losses_step", "tta_analysis_step",
           "snapshot_analysis_step"]

log = logging.getLogger(__name__)


def pack_step(data_dir: str, image_size: int, out_train: str, out_test: str) -> None:
    """Check the competition layout and pack it into two .npz files."""
    train, test = pack_competition(data_dir, image_size)
    write_npz(out_train, ids=train.ids, images=train.images, masks=train.masks)
    write_npz(out_test, ids=test.ids, images=test.images)
    log.info("packed %d train and %d test images from %s", len(train.ids), len(test.ids), data_dir)


def folds_step(packed_train: str, n_folds: int, seed: int, out: str) -> None:
    """Write the stratified fold table (parquet)."""
    data = load_packed(packed_train)
    table = split_folds(data.ids, data.masks, n_folds, seed)
    write_parquet(out, table)
    log.info("fold sizes: %s", table["fold"].value_counts().sort_index().to_dict())


def budget_step(packed_test: str, folds: str, budget_minutes: float, model: str, stages: list[dict],
                valid_fraction: float, predict_tta: bool, predict_batch_size: int, native: int, cores: int,
                fold_threads: int, bf16: bool | str, out: str, predict_shifts: list,
                run_folds: list[int] | None = None, predict_models: int = 1) -> None:
    """Plan the epochs that fit budget_minutes on this machine (saltnet.performance.budget) for the folds that
    train (run_folds; None: all of the split's); write them to `out`."""
    import torch

    from saltnet.performance.budget import fewer_folds_advice, plan_budget
    from saltnet.runtime.precision import cpu_info, resolve_bf16

    fold_sizes = pd.read_parquet(folds)["fold"].value_counts().sort_index().tolist()
    with np.load(packed_test, allow_pickle=False) as npz:  # the ids alone: the images' count, not their pixels
        n_test = len(npz["ids"])
    if torch.cuda.is_available():
        raise ValueError("config key budget_minutes: the time budget plans CPU runs (it times the CPU, and the folds "
                         "side by side as --cores allow), but this machine trains on a GPU; set budget_minutes: null "
                         "and choose the epochs")
    plan = plan_budget(budget_minutes, model, stages, fold_sizes, valid_fraction, predict_tta, predict_batch_size,
                       n_test, native, cores, fold_threads, bf16=resolve_bf16(bf16, torch.device("cpu")).bf16,
                       predict_shifts=predict_shifts, run=run_folds, predict_models=predict_models)
    plan["machine"] = cpu_info()
    log.info("budget %g min: epochs %s (scale %.2f of the configured), predicted %.1f min; %s", budget_minutes,
             plan["epochs"], plan["scale"], plan["predicted_seconds"] / 60,
             ", ".join(f"{s['stage']} epoch {s['epoch_seconds']:.0f} s" for s in plan["stages"]))
    if plan["busy"]:
        log.warning("the 1-minute load average was %.2f on %d cores when the measurement began: other processes "
                    "shared the CPU, so these epochs are likely too few (rule replan corrects the later "
                    "stages from their real times); for a plan of this machine alone, rerun it quiet with "
                    "snakemake -R plan_budget", plan["load_avg_1m"], cores)
    plan["advice"] = fewer_folds_advice(plan, len(fold_sizes))
    if plan["advice"]:
        log.warning(plan["advice"])
    write_json(out, plan)


def replan_step(budget: str, stage: str, done: dict[str, list[str]], out: str, labels: list[str] = ()) -> None:
    """The epochs of `stage` again, from the earlier stages' real times and the clock
    (saltnet.performance.budget.replan_stage); done: each earlier stage's run.json files; labels: the pseudo
    stage's labels.json files (the test images each fold got, the labelling's seconds)."""
    from saltnet.performance.budget import labelled_predict_seconds, replan_stage

    plan = _read_json(budget)
    runs = {name: [_read_json(path) for path in paths] for name, paths in done.items()}
    pseudo_images, later_predict = None, None
    if labels:
        summaries = [_read_json(path) for path in labels]
        pseudo_images = max(summary["kept"] for summary in summaries)
        later_predict = labelled_predict_seconds(plan, summaries)
    replan = replan_stage(plan, stage, runs, time.time(), pseudo_images=pseudo_images,
                          later_predict_seconds=later_predict)
    log.info("%s: the %s stage ran %.2fx its planned epoch; %s epochs %d of %.1f s (limit %.0f s per fold), run "
             "predicted to end after %.1f of %g min%s", stage, list(runs)[-1], replan["speed_ratio"], stage,
             replan["epochs"][stage], replan["epoch_seconds"], replan["time_limit_s"],
             replan["predicted_seconds"] / 60, plan["budget_minutes"],
             f", {replan['over_budget_seconds'] / 60:.1f} min over budget" if replan["over_budget_seconds"] else "")
    if "deadline" in replan:
        log.info("%s: every fold stops after the epoch from which one more would end %.1f min after planning "
                 "began", stage, replan["deadline_after_s"] / 60)
    write_json(out, replan)


def replan_round_step(budget: str, stage_budget: str, stage: str, round_number: int, rounds: int, folds: list[int],
                      done: dict[str, list[str]], out: str, labels: list[str] = ()) -> None:
    """The last stage's epochs again for the folds of round `round_number` of `rounds`
    (saltnet.performance.budget.replan_round); stage_budget: the stage's budget_{stage}.json; done: the earlier
    stages' run.json files and, under `stage`, those of this stage's folds of the earlier rounds; labels: the
    labels.json of this round's folds (the pseudo stage: the test images each trains on)."""
    from saltnet.performance.budget import replan_round

    plan = _read_json(budget)
    runs = {name: [_read_json(path) for path in paths] for name, paths in done.items()}
    pseudo_images = max((_read_json(path)["kept"] for path in labels), default=None)
    replan = replan_round(plan, _read_json(stage_budget), stage, round_number, runs, time.time(),
                          pseudo_images=pseudo_images, rounds=rounds)
    replan["folds"] = list(folds)
    log.info("%s, round %d of %d (folds %s): its earlier rounds ran %.2fx its planned epoch; %d epochs of %.1f s "
             "(limit %.0f s per fold), run predicted to end after %.1f of %g min%s", stage, round_number, rounds,
             folds, replan["speed_ratio"], replan["epochs"][stage], replan["epoch_seconds"], replan["time_limit_s"],
             replan["predicted_seconds"] / 60, plan["budget_minutes"],
             f", {replan['over_budget_seconds'] / 60:.1f} min over budget" if replan["over_budget_seconds"] else "")
    if "deadline" in replan:
        log.info("%s, round %d: every fold stops after the epoch from which one more would end %.1f min after "
                 "planning began", stage, round_number, replan["deadline_after_s"] / 60)
    write_json(out, replan)


def planned_epochs(budget: str, stage: str) -> int:
    """The epochs results/budget.json (or a replan's budget_{stage}.json) plans for `stage`."""
    return int(_read_json(budget)["epochs"][stage])


def planned_time_limit(budget: str) -> float | None:
    """The seconds a fold of the planned stage may train: a replan's time_limit_s, or for the first stage
    what budget.json leaves it (saltnet.performance.budget.first_stage_time_limit)."""
    from saltnet.performance.budget import first_stage_time_limit

    plan = _read_json(budget)
    if "time_limit_s" in plan:
        return float(plan["time_limit_s"])
    return first_stage_time_limit(plan) if "stages" in plan else None


def planned_deadline(budget: str, now: float | None = None) -> float | None:
    """The clock (time.time()) by which a fold of the planned stage must have trained: a last stage's replan
    gives one (saltnet.performance.budget.replan_stage); None where it does not, or where the job starts
    more than RESUMED_GAP_SECONDS past it: the run was stopped and resumed, and the plan's clock is stale."""
    from saltnet.performance.budget import RESUMED_GAP_SECONDS

    deadline = _read_json(budget).get("deadline")
    now = time.time() if now is None else now
    if deadline is None or now > deadline + RESUMED_GAP_SECONDS:
        return None
    return float(deadline)


def train_step(packed_train: str, folds: str, fold: int, settings: TrainSettings, stage: str, out_model: str,
               out_history: str, out_run: str, work_dir: str, lock_dir: str, init_weights: str | None = None,
               gpu_slots: int | None = None, pseudo_labels: str | None = None, packed_test: str | None = None,
               time_limit_s: float | None = None, deadline: float | None = None) -> None:
    """Train one fold at one resolution (stage 'train', 'finetune' or 'pseudo'); outputs appear only once the
    fold has finished. The model file carries its architecture, size, stage and settings
    (saltnet.models.modelfile).

    pseudo_labels: a labels.npz of pseudo_labels_step, whose test images (from packed_test) join the
    training images; time_limit_s: the stage stops after the epoch that would let the next one pass it
    (the budget's guard, saltnet.training.callbacks.TimeLimit); deadline: the same on the clock."""
    import torch

    from saltnet.models.modelfile import save_model_file
    from saltnet.runtime.device import device_lease
    from saltnet.training.fold import OWN_FILES, train_fold

    queued = time.time()
    data, table = load_packed(packed_train), pd.read_parquet(folds)
    extra = _pseudo_training_images(pseudo_labels, packed_test) if pseudo_labels else None
    with device_lease(lock_dir, gpu_slots) as lease:
        started = time.time()  # from here the job holds its device: start..end never overlap on one GPU
        log.info("fold %d on %s (%s)", fold, lease.device, lease.source)
        result = train_fold(data, table, fold, settings, work_dir, lease.device, init_weights, extra=extra,
                            time_limit_s=time_limit_s, deadline=deadline)
        ended = time.time()
    save_model_file(out_model, result.state_dict, settings, stage)
    write_parquet(out_history, result.history)
    write_json(out_run, {
        "fold": fold, "stage": stage, "model": settings.model, "size": settings.size, "device": str(lease.device),
        "gpu_slot": lease.slot,
        "lease": lease.source, "start": started, "end": ended, "seconds": ended - started,
        "lease_wait_s": started - queued,
        "epochs": result.epochs, "planned_epochs": settings.epochs, "resumed_from_epoch": result.resumed_from,
        "time_limit_s": time_limit_s, "deadline": deadline, "pseudo_images": 0 if extra is None else len(extra[0]),
        "epoch_seconds": _steady_epoch_seconds(result.history),
        "best_epoch": result.best_epoch, "best_map_iou": result.best_score, "swa": settings.swa,
        "precision": result.precision.name, "precision_reason": result.precision.reason,
        "threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    })
    for name in OWN_FILES:  # the fold is done: its checkpoint is no longer needed
        (Path(work_dir) / name).unlink(missing_ok=True)


def predict_step(weights: str | Sequence[str], packed_train: str, packed_test: str, folds: str, fold: int,
                 out_test: str, out_oof: str, lock_dir: str, batch_size: int, tta: bool, shifts: list,
                 bf16: bool | str, expected: TrainSettings | Sequence[TrainSettings] | None = None,
                 gpu_slots: int | None = None) -> None:
    """TTA probabilities (flip, shifts: see predict.tta_views) of the fold's model on the test set and on its
    own validation images; with several model files (config predict.stages: one training's stages), the mean
    of their probabilities. The architecture and size come from each model file; `expected` (the config's
    settings of each file's stage, in the same order) must match the recipe it was trained with, else
    ValueError naming both, before anything is predicted.

    bf16: config key bf16 (True, False or 'auto'), resolved for the device this job holds.
    """
    from saltnet.inference.predict import predict_probs
    from saltnet.models import get_model_spec
    from saltnet.models.modelfile import check_model_file, read_model_file
    from saltnet.runtime.device import device_lease
    from saltnet.runtime.precision import resolve_bf16

    weights = [weights] if isinstance(weights, str) else list(weights)
    expected = expected if isinstance(expected, (list, tuple)) else [expected] * len(weights)
    if len(expected) != len(weights):
        raise ValueError(f"fold {fold}: {len(weights)} model files but {len(expected)} stages' settings to check "
                         "them against")
    files = [read_model_file(path) for path in weights]
    for found, settings in zip(files, expected):  # every file checked before any prediction
        if settings is not None:
            check_model_file(found, settings)
    train, test = load_packed(packed_train), load_packed(packed_test)
    _, valid_idx = fold_indices(pd.read_parquet(folds), train.ids, fold)
    test_sum, oof_sum = 0.0, 0.0  # the models' probabilities summed in float32, one model at a time
    with device_lease(lock_dir, gpu_slots) as lease:
        precision = resolve_bf16(bf16, lease.device)
        log.info("fold %d: predicting %d test and %d out-of-fold images on %s with %d model(s), precision %s (%s)",
                 fold, len(test.ids), len(valid_idx), lease.device, len(files), precision.name, precision.reason)
        for found in files:
            log.info("fold %d: %s (%s)", fold, found.path, found.describe())
            input_size = get_model_spec(found.model).input_size(found.size, train.images.shape[-1])
            kwargs = dict(size=input_size, device=lease.device, batch_size=batch_size, tta=tta, shifts=shifts,
                          bf16=precision.bf16)
            model = found.build()
            test_probs = predict_probs(model, test.images, desc=f"fold {fold} test", **kwargs)
            oof_probs = predict_probs(model, train.images[valid_idx], desc=f"fold {fold} out-of-fold", **kwargs)
            test_sum, oof_sum = test_sum + test_probs.astype(np.float32), oof_sum + oof_probs.astype(np.float32)
    # the mean in predict_probs' dtype: one model's probabilities come back exactly as predicted
    write_npz(out_test, ids=test.ids, probs=(test_sum / len(files)).astype(test_probs.dtype))
    write_npz(out_oof, ids=train.ids[valid_idx], probs=(oof_sum / len(files)).astype(oof_probs.dtype))


def _steady_epoch_seconds(history: pd.DataFrame) -> float | None:
    """Median seconds of the epochs after the first (which carries warm-up); of all where there is one."""
    if "seconds" not in history or history.empty:
        return None
    times = history["seconds"].to_numpy()
    return float(np.median(times[1:] if len(times) > 1 else times))


def _pseudo_training_images(labels: str, packed_test: str) -> tuple[np.ndarray, np.ndarray]:
    """(images, masks) of the test images a labels.npz keeps, checked against the packed test ids."""
    test = load_packed(packed_test)
    with np.load(labels, allow_pickle=False) as npz:
        kept, ids, masks = npz["kept"], npz["ids"], npz["masks"]
    if len(kept) and (kept.max() >= len(test.ids) or not np.array_equal(test.ids[kept], ids)):
        raise ValueError(f"{labels}: its test ids are not those of {packed_test} (packed again since?): "
                         "run the pseudo_labels rule again (snakemake -R pseudo_labels)")
    return test.images[kept], masks


def pseudo_labels_step(weights: str, packed_test: str, fold: int, out_labels: str, out_summary: str,
                       lock_dir: str, batch_size: int, tta: bool, shifts: list, bf16: bool | str, low: float,
                       high: float, share: float, expected: TrainSettings | None = None,
                       gpu_slots: int | None = None) -> None:
    """Fold `fold`'s finetune model predicts the test images (with the config's TTA); those it labels
    confidently (saltnet.training.pseudo) go to out_labels (kept: (K,) indices, ids, masks: (K, H, W) uint8),
    the rule and the share kept to out_summary."""
    from saltnet.inference.predict import predict_probs
    from saltnet.models import get_model_spec
    from saltnet.models.modelfile import load_model
    from saltnet.runtime.device import device_lease
    from saltnet.runtime.precision import resolve_bf16
    from saltnet.training.pseudo import select_pseudo_labels

    model, found = load_model(weights, expected)
    test = load_packed(packed_test)
    input_size = get_model_spec(found.model).input_size(found.size, test.images.shape[-1])
    with device_lease(lock_dir, gpu_slots) as lease:
        precision = resolve_bf16(bf16, lease.device)
        started = time.time()
        probs = predict_probs(model, test.images, size=input_size, device=lease.device, batch_size=batch_size,
                              tta=tta, shifts=shifts, bf16=precision.bf16, desc=f"fold {fold} pseudo-labels")
        seconds = time.time() - started
    labels = select_pseudo_labels(probs, low, high, share)
    summary = {"fold": fold, "model": weights, **labels.summary(low, high, share), "seconds": round(seconds, 1)}
    log.info("fold %d: %d of %d test images (%.0f%%) kept as pseudo-labels, %d of them empty", fold, summary["kept"],
             summary["test_images"], 100 * summary["kept_share"], summary["kept_empty"])
    write_npz(out_labels, kept=labels.kept, ids=test.ids[labels.kept], masks=labels.masks)
    write_json(out_summary, summary)


def ensemble_step(fold_preds: list[str], out: str) -> None:
    """The mean of the folds' test probabilities, a chunk of images at a time (bounded memory)."""
    folds = write_fold_mean(fold_preds, out)
    log.info("averaged %d folds into %s", folds, out)


def postprocess_step(packed_train: str, folds: str, oof_preds: dict[int, str], threshold: float | str,
                     min_area: int | str, min_peak: float | str, out: str) -> None:
    """Threshold, min_area and min_peak searched on the out-of-fold predictions of the run's folds
    ({fold: oof.npz}; 'auto') or kept (a number); JSON with them, how each was chosen, the OOF score
    before and after, and the score over thresholds."""
    oof = _run_oof(packed_train, folds, oof_preds)
    chosen = choose_postprocess(oof.probs, oof.truth, threshold, min_area, min_peak)
    write_json(out, chosen)
    log.info("threshold %s (%s), min_area %d (%s), min_peak %s (%s): OOF score %.4f -> %.4f", chosen["threshold"],
             chosen["threshold_source"], chosen["min_area"], chosen["min_area_source"], chosen["min_peak"],
             chosen["min_peak_source"], chosen["before"]["oof_map_iou"], chosen["after"]["oof_map_iou"])


def _run_oof(packed_train: str, folds_table: str, oof_preds: dict[int, str]):
    """The run folds' out-of-fold predictions joined to their images and masks, each fold's ids checked
    against the fold table."""
    return load_oof(packed_train, oof_preds, folds_table=pd.read_parquet(folds_table))


def _read_json(path: str) -> dict:
    return json.loads(Path(path).read_text())


def submission_step(ensemble: str, sample_submission: str, postprocess: str, out: str) -> None:
    """Threshold, min_area and min_peak of postprocess.json, encode and validate; the CSV follows
    sample_submission's id order."""
    chosen = _read_json(postprocess)
    with np.load(ensemble, allow_pickle=False) as npz:
        ids, probs = npz["ids"], npz["probs"]
    sample_ids = pd.read_csv(sample_submission, dtype=str, keep_default_na=False)["id"].tolist()
    sub = build_submission(ids, apply_setting(probs, chosen))
    validate_submission(sub, sample_ids, probs.shape[1:])
    sub = sub.set_index("id").loc[sample_ids].reset_index()
    write_submission_csv(sub, out)
    log.info("%s: wrote %d rows, %d non-empty masks", describe_setting(chosen), len(sub),
             int((sub["rle_mask"] != "").sum()))


def cv_score_step(packed_train: str, folds_table: str, oof_preds: dict[int, str], postprocess: str,
                  out: str) -> None:
    """Out-of-fold competition score over the run folds' images (all training images unless config
    folds.run names some) and per fold: raw (top-level keys: the
    'before' of postprocess.json, min_area and min_peak 0) and post-processed (its 'after', key
    'postprocessed')."""
    chosen = _read_json(postprocess)
    settings = {"raw": chosen["before"], "postprocessed": chosen["after"]}
    per_fold = {name: {} for name in settings}
    scores = {name: [] for name in settings}
    oof = _run_oof(packed_train, folds_table, oof_preds)
    for fold in sorted(oof_preds):
        rows = oof.fold == fold
        for name, setting in settings.items():
            pred = apply_setting(oof.probs[rows], setting)
            fold_scores = image_scores(pred, oof.truth[rows])
            per_fold[name][str(fold)] = float(fold_scores.mean())
            scores[name].append(fold_scores)
    overall = {name: float(np.concatenate(scores[name]).mean()) for name in settings}
    write_json(out, {
        "threshold": settings["raw"]["threshold"], "min_area": 0, "oof_map_iou": overall["raw"],
        "per_fold": per_fold["raw"], "n_images": sum(len(s) for s in scores["raw"]), "folds": sorted(oof_preds),
        "postprocessed": {
            "threshold": chosen["threshold"], "threshold_source": chosen["threshold_source"],
            "min_area": chosen["min_area"], "min_area_source": chosen["min_area_source"],
            "min_peak": chosen.get("min_peak", 0.0), "min_peak_source": chosen.get("min_peak_source", "not searched"),
            "oof_map_iou": overall["postprocessed"], "per_fold": per_fold["postprocessed"],
        },
    })
    log.info("OOF score %.4f raw, %.4f post-processed", overall["raw"], overall["postprocessed"])


def heldout_postprocess_step(packed_train: str, folds_table: str, oof_preds: dict[int, str], postprocess: str,
                             threshold: float | str, min_area: int | str, min_peak: float | str, out: str) -> None:
    """results/analysis/postprocess.json: the post-processing's gain on images it was not chosen on."""
    from saltnet.evaluation.analyses import heldout_postprocess

    oof = _run_oof(packed_train, folds_table, oof_preds)
    found = heldout_postprocess(oof, threshold, min_area, min_peak, chosen=_read_json(postprocess))
    write_json(out, found)
    log.info("post-processing: %.4f raw, %.4f chosen on the images scored, %.4f held out (optimism %+.4f)",
             found["raw"], found["in_sample"], found["held_out"], found["optimism"])


def coverage_losses_step(packed_train: str, folds_table: str, oof_preds: dict[int, str], postprocess: str,
                         out: str) -> None:
    """results/analysis/losses.json: where the post-processed OOF score loses its points."""
    from saltnet.evaluation.analyses import coverage_losses

    oof = _run_oof(packed_train, folds_table, oof_preds)
    found = coverage_losses(oof, _read_json(postprocess)["after"])
    write_json(out, found)
    log.info("points lost: %s", ", ".join(f"{k} {g['points_lost']:.4f}" for k, g in found["groups"].items()))


def tta_analysis_step(packed_train: str, folds_table: str, oof_preds: dict[int, str], models: dict[int, dict],
                      batch_size: int, lock_dir: str, out: str, gpu_slots: int | None = None) -> None:
    """results/analysis/tta.json: the out-of-fold images predicted again with each test-time view."""
    from saltnet.evaluation.views import tta_gain
    from saltnet.runtime.device import device_lease

    oof = _run_oof(packed_train, folds_table, oof_preds)
    with device_lease(lock_dir, gpu_slots) as lease:
        found = tta_gain(oof, models, lease.device, batch_size)
    write_json(out, found)
    log.info("views: %s", ", ".join(f"{k} {v['raw']:.4f}/{v['postprocessed']:.4f}" for k, v in found.items()))


def snapshot_analysis_step(packed_train: str, folds_table: str, oof_preds: dict[int, str], stage: str,
                           ks: list[int], lock_dir: str, out: str, gpu_slots: int | None = None) -> None:
    """results/analysis/snapshots.json: the stage's final model against averages of its last snapshots."""
    from saltnet.evaluation.views import snapshot_gain
    from saltnet.runtime.device import device_lease

    table = pd.read_parquet(folds_table)
    train = load_packed(packed_train)
    oof = load_oof(train, oof_preds, folds_table=table)
    with device_lease(lock_dir, gpu_slots) as lease:
        found = snapshot_gain(oof, train, table, lambda k: f"results/{stage}/fold{k}",
                              lambda k: f"results/checkpoints/{stage}/fold{k}/snapshots", ks, lease.device)
    write_json(out, {"stage": stage, **found})
    log.info("snapshots: %s", ", ".join(f"{k} {v['raw']:.4f}/{v['postprocessed']:.4f}" for k, v in found.items()))
