"""Epochs that fit a time budget: time this machine's steps, then scale the configured schedule.

With config `budget_minutes` set, rule plan_budget runs once before training: it times a training
step of each stage (the stage's model, size, batch, loss and augmentation), a validation batch and the prediction
forward, in as many processes side by side as fold jobs will run at once, each with the fold jobs'
threads (two 1-thread folds on two cores do not run at the speed of one). From those it predicts the
DAG's wall time and scales every stage's `epochs` by one factor so the whole run fits the budget:
fewer epochs on a slow machine, more (at most MAX_SCALE times) on a fast one. Once a stage has ended
in every fold, rule replan (results/budget_{stage}.json) sets the next stage's epochs from that
stage's real epochs and the clock (replan_stage below), so the last stage hands the run its whole
budget, and gives each fold a time limit that guards the end. Where the folds train in rounds (more
folds than run side by side), rule replan_round (results/budget_{stage}_round{r}.json) sets the last
stage's epochs again before each later round, from that stage's own real epochs (replan_round). The
stages keep their one-cycle schedules, so a plan is an ordinary run with other epoch counts;
results/budget*.json say what was measured, planned and predicted, so the run can be repeated with
those epochs fixed.

The plan reserves RESERVE_SECONDS for what it does not time (job start-up, packing, fold splitting,
reports).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

__all__ = ["BUSY_LOAD_PER_CORE", "MAX_SCALE", "RESERVE_SECONDS", "LOOP_OVERHEAD", "TARGET_SHARE", "LAST_STAGE_CEILING",
           "StageCost", "plan_epochs", "measure_steps", "plan_budget", "replan_stage", "stage_epoch_seconds",
           "used_seconds", "first_stage_time_limit", "FEW_EPOCHS_SCALE", "fewer_folds_advice", "fold_rounds",
           "replan_round", "labelled_predict_seconds"]

MAX_SCALE = 3.0  # at most 3x the configured epochs: beyond that the schedule was never measured
# The plans aim the DAG's end at this share of budget_minutes: a run ends within the budget's last 5%
# when its predictions err by less than 2.5% of the budget either way (the last stage's TimeLimit
# guards the end).
TARGET_SHARE = 0.975
# The last stage's epochs are rounded up where the run's predicted end stays under this share of the budget
# (replan_stage); its folds' time limits still hold the end inside the budget.
LAST_STAGE_CEILING = 0.99
# The share of the test images the pseudo stage is planned with, until rule replan knows how many its folds
# got: a little above what 1st place's rule kept on the CPU preset's proxy (docs/experiments.md, pseudo_labels).
PLANNED_PSEUDO_SHARE = 0.25
# A clock more than this ahead of the time at work: the run was stopped and resumed (used_seconds).
RESUMED_GAP_SECONDS = 600.0
# What the plans do not time: the jobs after the last training stage (ensemble, post-processing, scores,
# analyses, reports) and each job's start-up. The budget's clock starts at plan_budget, after packing and
# the folds; the predictions are planned on their own (docs/speed.md).
RESERVE_SECONDS = 45.0  # above what those jobs took beyond the predictions in the full runs (tools/after_training.py)
# Timed steps per measurement, after WARMUP_STEPS untimed ones: replan_stage multiplies a stage's real epoch
# by the ratio of two stages' medians, which fewer steps leave noisy (tools/stage_ratio.py; docs/speed.md,
# the time budget).
TIMED_STEPS = 40
WARMUP_STEPS = 2
# A 1-minute load average above this many runnable processes per core when the measurement begins:
# other work shares the CPU, the steps time slow and the plan gives too few epochs; budget.json records
# the load.
BUSY_LOAD_PER_CORE = 0.5
STARTUP_SECONDS = 15.0  # the measuring processes' imports; they all start timing this long after launch
# Predicted pipeline epoch = the steps' median time (with the stage's augmentation) x LOOP_OVERHEAD
# (fastai's loop, batches cut, the metric, checkpoints), calibrated on full CPU-preset runs (docs/speed.md, the time
# budget); a plan that errs either way is mended by rule replan.
LOOP_OVERHEAD = 0.98
# A plan below this scale trains every fold on less than half its configured epochs; there plan_budget
# advises fewer folds with more epochs each (why: docs/speed.md, the time budget).
FEW_EPOCHS_SCALE = 0.5


@dataclass(frozen=True)
class StageCost:
    """One training stage of one fold: its configured epochs and the measured cost of an epoch."""

    stage: str
    epochs: int  # configured
    train_steps: int  # optimiser steps per epoch
    valid_steps: int  # validation batches per epoch (the scored share of the fold)
    step_seconds: float  # one training step, measured
    valid_step_seconds: float  # one validation batch, measured

    @property
    def epoch_seconds(self) -> float:
        """Predicted seconds of one epoch in the pipeline (the bare steps times LOOP_OVERHEAD)."""
        return LOOP_OVERHEAD * (self.train_steps * self.step_seconds + self.valid_steps * self.valid_step_seconds)


def fold_rounds(n_folds: int, cores: int, fold_threads: int) -> tuple[int, int]:
    """(folds side by side, rounds of them) for n_folds fold jobs of fold_threads threads each on `cores` cores
    (Snakemake caps a job's threads at --cores)."""
    fold_threads = max(1, min(fold_threads, cores))
    parallel = max(1, min(n_folds, cores // fold_threads))
    return parallel, math.ceil(n_folds / parallel)


def _too_short(budget_seconds: float, why: str) -> ValueError:
    """The error for a budget_minutes that cannot hold a plan; why: the words after "too short"."""
    return ValueError(f"config key budget_minutes: {budget_seconds / 60:g} min is too short{why}; raise "
                      "budget_minutes, or set it to null and choose the epochs yourself")


def plan_epochs(stages: list[StageCost], rounds: int, budget_seconds: float, other_seconds: float,
                max_scale: float = MAX_SCALE, target_share: float = 1.0) -> dict:
    """Scale all stages' epochs by one factor so that `rounds` waves of fold jobs plus other_seconds
    (prediction, reserve) fit in budget_seconds -> {"scale", "epochs": {stage: n}, "predicted_seconds",
    "over_budget_seconds"}.

    Epochs are rounded down, but at least 1 each (which may end over budget: over_budget_seconds says by
    how much); raises ValueError when even one epoch per stage does not fit.
    """
    per_fold = sum(s.epochs * s.epoch_seconds for s in stages)
    available = target_share * budget_seconds - other_seconds  # the end aimed at target_share of the budget
    minimum = rounds * sum(s.epoch_seconds for s in stages) + other_seconds
    if available <= 0 or minimum > budget_seconds:
        raise _too_short(budget_seconds, f" on this machine: one epoch per stage and the predictions need about "
                                         f"{math.ceil(minimum / 60)} min as measured here")
    scale = min(max_scale, available / (rounds * per_fold))
    epochs = {s.stage: max(1, math.floor(scale * s.epochs)) for s in stages}
    predicted = rounds * sum(epochs[s.stage] * s.epoch_seconds for s in stages) + other_seconds
    return {"scale": round(scale, 4), "epochs": epochs, "predicted_seconds": round(predicted, 1),
            "over_budget_seconds": round(max(0.0, predicted - budget_seconds), 1)}


def _time_interleaved(steps: dict[str, Callable[[], None]], n: int, warmup: int = WARMUP_STEPS) -> dict[str, float]:
    """{name: step} -> {name: median seconds of n calls}: `warmup` untimed calls of each first (oneDNN
    primitives, allocation), then n rounds that call every step once in turn, so that a machine that speeds
    up or slows down while it is measured (one-time set-up on a CPU with AMX, a neighbour's load) moves every
    stage alike and the stages' ratios hold; the median, since the processes side by side disturb single
    steps (means of 4 varied 15% between runs)."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(n):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _measure_worker(job: dict) -> dict:
    """In a fresh process with job["threads"] threads: seconds per training step and per validation
    batch of each stage, and per prediction batch of job["predict_batch_size"] images (the last stage's model)."""
    import torch

    from saltnet.data.augment import AugmentSettings
    from saltnet.models import build_model, get_model_spec
    from saltnet.performance.bench import make_infer_step, make_train_step

    torch.set_num_threads(job["threads"])
    torch.manual_seed(0)
    steps = {}
    for stage in job["stages"]:
        train_model = build_model(job["model"], "none", stage["size"]).to(memory_format=torch.channels_last).train()
        infer_model = build_model(job["model"], "none", stage["size"]).to(memory_format=torch.channels_last).eval()
        side = get_model_spec(job["model"]).input_size(stage["size"], job["native"])
        x = torch.randn(stage["batch_size"], 3, side, side).contiguous(memory_format=torch.channels_last)
        target = (torch.rand(stage["batch_size"], 1, job["native"], job["native"]) > 0.5).float()
        augment = AugmentSettings(**stage["augment"]) if stage.get("augment") is not None else None
        steps[stage["stage"]] = make_train_step(train_model, x, target, job["bf16"], loss=stage["loss"],
                                                aux_weight=stage["aux_weight"], aux_resolution=stage["aux_resolution"],
                                                augment=augment)
        steps[stage["stage"] + "_infer"] = make_infer_step(infer_model, x, job["bf16"])
    x = torch.randn(job["predict_batch_size"], 3, side, side).contiguous(memory_format=torch.channels_last)
    steps["predict"] = make_infer_step(infer_model, x, job["bf16"])  # the last stage's model
    # Start timing together: the processes must run side by side for the whole measurement, as the fold
    # jobs do (staggered start-ups had left one process timing alone: 77-97 s per epoch between plans).
    time.sleep(max(0.0, job["start_at"] - time.time()))
    return _time_interleaved(steps, job["steps"])


def measure_steps(model: str, stages: list[dict], native: int, processes: int, threads: int, bf16: bool,
                  predict_batch_size: int, steps: int = TIMED_STEPS) -> dict:
    """Seconds per training step and per inference batch of each stage (dicts with stage, size,
    batch_size, loss, aux_weight, aux_resolution and, optionally, augment: its keywords), and per
    prediction batch of predict_batch_size images, timed in `processes` processes side by side with
    `threads` threads each, the slowest process's figure kept ->
    {stage: s, stage + "_infer": s, "predict": s}.

    The processes are fresh interpreters (`python -m saltnet.performance.budget JOB`), not multiprocessing
    workers: those would re-import the calling script, which under Snakemake is the rule's script.
    They find this package as this process does (PYTHONPATH is extended: a conda env of a Snakemake
    job does not install it), and start timing at one moment, STARTUP_SECONDS from now.
    """
    job = json.dumps(dict(model=model, stages=stages, native=native, threads=threads, bf16=bf16, steps=steps,
                          predict_batch_size=predict_batch_size, start_at=time.time() + STARTUP_SECONDS))
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as tmp:
        logs = [open(Path(tmp) / f"worker{i}.err", "w+") for i in range(processes)]
        workers = [subprocess.Popen([sys.executable, "-m", "saltnet.performance.budget", job], stdout=subprocess.PIPE,
                                    stderr=log, text=True, env=env) for log in logs]
        try:
            results = []
            for worker, log in zip(workers, logs):
                out, _ = worker.communicate()
                if worker.returncode != 0:
                    log.seek(0)
                    raise RuntimeError(f"budget measurement of model {model} failed ({worker.returncode}):\n"
                                       f"{log.read()[-2000:]}")
                results.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            for worker, log in zip(workers, logs):
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
                log.close()
    return {key: max(r[key] for r in results) for key in results[0]}


def _predict_seconds(images: int, batch_seconds: float, batch_size: int) -> float:
    """Predicted seconds of predicting `images` (TTA flips counted) at the measured seconds per batch."""
    return LOOP_OVERHEAD * images * batch_seconds / batch_size


def plan_budget(budget_minutes: float, model: str, stages: list[dict], fold_sizes: list[int], valid_fraction: float,
                predict_tta: bool, predict_batch_size: int, n_test: int, native: int, cores: int, fold_threads: int,
                bf16: bool = False, predict_shifts: list = (), run: list[int] | None = None,
                predict_models: int = 1) -> dict:
    """The plan written to results/budget.json (see the module docstring).

    stages: per stage dicts with stage, epochs, size, batch_size, loss (and augment: its keywords, timed
    with the step); fold_sizes: images per fold, all folds of the split; run: the folds that train (config
    folds.run), None: all of them; predict_tta, predict_batch_size, predict_shifts: config predict's tta,
    batch_size and shifts; predict_models: the models per fold that predict (config predict.stages).
    """
    from saltnet.inference.predict import tta_views
    from saltnet.training.fold import valid_count

    run_sizes = list(fold_sizes) if run is None else [fold_sizes[k] for k in run]
    fold_threads = max(1, min(fold_threads, cores))  # Snakemake caps a job's threads at --cores
    parallel, rounds = fold_rounds(len(run_sizes), cores, fold_threads)
    if budget_minutes * 60 <= RESERVE_SECONDS:  # refused before minutes of timing: no plan can fit
        raise _too_short(budget_minutes * 60, f": the jobs after training alone are given {RESERVE_SECONDS:g} s")
    load = os.getloadavg()[0]
    clock, started = time.time(), time.perf_counter()
    seconds = measure_steps(model, stages, native, parallel, fold_threads, bf16, predict_batch_size)
    n_images, largest = sum(fold_sizes), max(run_sizes)  # a fold trains on every other fold's images
    costs = []
    for stage in stages:
        batch = stage["batch_size"]
        n_train = n_images - min(run_sizes)  # the largest training set of any fold that runs
        scored = valid_count(largest, valid_fraction)
        if stage["stage"] == "pseudo":  # planned with a share of the test images; replan_stage counts those kept
            n_train += round(PLANNED_PSEUDO_SHARE * n_test)
        costs.append(StageCost(stage["stage"], stage["epochs"], max(1, n_train // batch), math.ceil(scored / batch),
                               seconds[stage["stage"]], seconds[stage["stage"] + "_infer"]))
    views = len(tta_views(predict_tta, predict_shifts))
    pseudo = any(stage["stage"] == "pseudo" for stage in stages)
    # per process, flips and shifts included: each predicting model its fold's images and the test set; with a
    # pseudo stage the finetune models also label the test set
    predict_images = rounds * ((largest + n_test) * predict_models + (n_test if pseudo else 0)) * views
    predict_seconds = _predict_seconds(predict_images, seconds["predict"], predict_batch_size)
    measured = time.perf_counter() - started
    plan = plan_epochs(costs, rounds, budget_minutes * 60, predict_seconds + RESERVE_SECONDS + measured,
                       target_share=TARGET_SHARE)
    return {**plan, "budget_minutes": budget_minutes, "parallel_folds": parallel, "rounds": rounds,
            "fold_threads": fold_threads, "predict_seconds": round(predict_seconds, 1),
            "predict_images": predict_images, "predict_models": predict_models,
            "reserve_seconds": RESERVE_SECONDS, "planning_seconds": round(measured, 1),
            "load_avg_1m": round(load, 2), "busy": load > BUSY_LOAD_PER_CORE * cores,
            "started": clock, "target_share": TARGET_SHARE, "n_test": n_test, "largest_fold": largest,
            "folds_run": sorted(run) if run is not None else list(range(len(fold_sizes))),
            "stages": [{**asdict(c), "epoch_seconds": c.epoch_seconds, "batch_size": stage["batch_size"],
                        "own_images": n_images - min(run_sizes)} for c, stage in zip(costs, stages)]}


def fewer_folds_advice(plan: dict, n_folds: int) -> str | None:
    """What to run instead where the plan scaled the epochs below FEW_EPOCHS_SCALE and more than 2 folds of
    an `n_folds` split train (a proxy that trains some folds only is left alone); None where it did not."""
    if plan["scale"] >= FEW_EPOCHS_SCALE or n_folds <= 2 or len(plan["folds_run"]) < n_folds:
        return None
    folds = max(2, n_folds // 2)
    no_pseudo = " pseudo=null" if "pseudo" in plan["epochs"] else ""  # measured together with the halved folds
    return (f"this machine gets {plan['scale']:.2f} of the configured epochs ({plan['epochs']}) for each of {n_folds} "
            f"folds; on a CPU this slow half the folds with the whole schedule each scored higher (docs/measured.md, "
            f"'The CPU preset with 2 folds on an AVX2-only EPYC'): consider --config 'folds={{n: {folds}}}'{no_pseudo}")


def first_stage_time_limit(plan: dict) -> float:
    """Seconds the first stage's fold jobs may train (callbacks.TimeLimit): what leaves, within the budget,
    one epoch of every later stage and the predictions, per round of folds."""
    later = sum(s["epoch_seconds"] for s in plan["stages"][1:])
    left = (plan["budget_minutes"] * 60 - plan["reserve_seconds"] - plan["planning_seconds"] - plan["predict_seconds"]
            - plan["rounds"] * later)
    return round(max(left / plan["rounds"], plan["stages"][0]["epoch_seconds"]), 1)


def stage_epoch_seconds(run: dict) -> float:
    """Seconds of one epoch of a finished fold job (run.json): its steady epochs' median where the job
    recorded it (the first epoch carries warm-up: oneDNN primitives, AMX kernels), else its mean."""
    if run.get("epoch_seconds"):
        return float(run["epoch_seconds"])
    return run["seconds"] / max(1, _job_epochs(run))


def _job_epochs(run: dict) -> int:
    """Epochs a finished fold job (run.json) trained itself: those of a run it resumed not counted."""
    return run["epochs"] - (run.get("resumed_from_epoch") or 0)


def _work_seconds(runs: list[dict]) -> float:
    """Seconds in which at least one of `runs` was running (the union of their start..end): folds side by
    side count once, a night between a fold and its rerun not at all."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted((r["start"], r["end"]) for r in runs):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def used_seconds(plan: dict, done: dict[str, list[dict]], now: float, extra_seconds: float = 0.0) -> float:
    """Seconds of the budget used by `now`: the clock since plan_budget began, which counts everything
    (the jobs, Snakemake's scheduling, the replans). Where the run was stopped and resumed (or the plan
    predates `started`), the time at work instead: planning, the stages' fold jobs (their union) and
    extra_seconds (replans, labelling)."""
    return _used(plan, done, now, extra_seconds)[0]


def _used(plan: dict, done: dict[str, list[dict]], now: float, extra_seconds: float) -> tuple[float, bool]:
    """(used_seconds, whether they are the budget's clock: True unless the run was resumed)."""
    runs = [run for stage_runs in done.values() for run in stage_runs]
    at_work = plan["planning_seconds"] + _work_seconds(runs) + extra_seconds
    if "started" not in plan or any(run.get("resumed_from_epoch") for run in runs):
        return at_work, False
    clock = now - plan["started"]
    return (clock, True) if clock <= at_work + RESUMED_GAP_SECONDS else (at_work, False)


def replan_stage(plan: dict, stage: str, done: dict[str, list[dict]], now: float | None = None,
                 extra_seconds: float = 0.0, pseudo_images: int | None = None,
                 later_predict_seconds: float | None = None, max_scale: float = MAX_SCALE) -> dict:
    """The epochs of `stage` again, once the stages before it have ended in every fold -> {"epochs":
    {stage: n}, "speed_ratio", "epoch_seconds", "used_seconds", "predicted_seconds", "over_budget_seconds",
    "time_limit_s"} and, for the last stage, "deadline" (see _deadline).

    plan: budget.json; done: the run.json of every fold of each earlier stage; now: the clock (time.time());
    pseudo_images: test images each fold's pseudo stage trains on beside its own (labels.json), where known;
    later_predict_seconds: prediction time still to come where measured (else the plan's, scaled).

    The epoch of a stage to come is the last finished stage's real steady epoch (its slowest fold's) times
    the ratio of their measured step costs: both measured at one moment, so a busy or warming-up machine
    slows both alike, and the real epoch carries the machine's speed now. What is left of the budget up to
    TARGET_SHARE of it, after the time used and what must follow (predictions, the reserve), goes to this
    stage and the ones after it by one factor on their configured epochs (1 to max_scale x). time_limit_s,
    the guard each fold gets (callbacks.TimeLimit): its planned seconds plus its round's share of the
    margin to the budget and of what later stages could give up, so that no fold can carry the run past
    budget_minutes.
    """
    order = [s["stage"] for s in plan["stages"]]
    previous = order[order.index(stage) - 1]
    costs = _stage_costs(plan, pseudo_images)
    real = max(stage_epoch_seconds(run) for run in done[previous])
    ratio = real / costs[previous]
    epoch = {s: ratio * costs[s] for s in order[order.index(stage):]}
    configured = {s["stage"]: s["epochs"] for s in plan["stages"]}
    used, on_clock = _used(plan, done, time.time() if now is None else now, extra_seconds)
    predict = later_predict_seconds if later_predict_seconds is not None else ratio * plan["predict_seconds"]
    budget = plan["budget_minutes"] * 60
    left = TARGET_SHARE * budget - plan["reserve_seconds"] - used - predict
    per_unit = plan["rounds"] * sum(configured[s] * epoch[s] for s in epoch)  # all stages to come, 1x configured
    scale = min(max_scale, max(0.0, left / per_unit))
    epochs = max(1, math.floor(scale * configured[stage]))
    later_epochs = {s: max(1, math.floor(scale * configured[s])) for s in epoch if s != stage}
    later = plan["rounds"] * sum(n * epoch[s] for s, n in later_epochs.items())
    predicted = used + plan["rounds"] * epochs * epoch[stage] + later + predict + plan["reserve_seconds"]
    if not later_epochs:
        epochs, predicted = _one_more(epochs, max_scale * configured[stage], predicted,
                                      plan["rounds"] * epoch[stage], budget)
    # the guard: the margin to the budget, and what the stages after this one could give up (all but one
    # epoch each: their replans would take it back), so only the last stage is held to its plan closely
    margin = max(0.0, budget - predicted) + plan["rounds"] * sum((n - 1) * epoch[s] for s, n in later_epochs.items())
    return {**_deadline(plan, done[previous], predict, last=not later_epochs and on_clock),
            "stage": stage, "epochs": {stage: epochs}, "speed_ratio": round(ratio, 3),
            "epoch_seconds": round(epoch[stage], 2), "previous_epoch_seconds": round(real, 2),
            "used_seconds": round(used, 1), "predicted_seconds": round(predicted, 1),
            "over_budget_seconds": round(max(0.0, predicted - budget), 1), "predict_seconds": round(predict, 1),
            "time_limit_s": round(epochs * epoch[stage] + margin / plan["rounds"], 1)}


def labelled_predict_seconds(plan: dict, summaries: list[dict]) -> float:
    """The final predictions' seconds, measured by the pseudo stage's labelling (each fold's labels.json):
    each fold's test set again, at its labelling's speed, and its own images, by each predicting model, per
    round of folds."""
    per_image = max(summary["seconds"] / max(1, summary["test_images"]) for summary in summaries)
    return plan["rounds"] * per_image * (plan["n_test"] + plan["largest_fold"]) * plan.get("predict_models", 1)


def _one_more(epochs: int, cap: float, predicted: float, more: float, budget: float) -> tuple[int, float]:
    """(epochs, predicted seconds) of the last stage, one epoch more where that stays within `cap` epochs and
    the end under LAST_STAGE_CEILING of the budget: floor() leaves up to one epoch per round of the budget
    unused (docs/speed.md, the time budget); `more`: the seconds the epoch adds to the run."""
    if epochs + 1 <= cap and predicted + more <= LAST_STAGE_CEILING * budget:
        return epochs + 1, predicted + more
    return epochs, predicted


def replan_round(plan: dict, stage_replan: dict, stage: str, round_number: int, done: dict[str, list[dict]],
                 now: float | None = None, pseudo_images: int | None = None, rounds: int | None = None,
                 max_scale: float = MAX_SCALE) -> dict:
    """The last stage's epochs again for its folds' round `round_number` (2, 3, ...: the first round's are
    rule replan's, stage_replan), once the folds of the rounds before it have ended -> the keys of
    replan_stage, "round" and, on the budget's clock, "deadline".

    replan_stage predicts the last stage's epoch from the stage before it times the ratio of their measured
    step costs, whose error moves the run's end (docs/speed.md, the time budget). Here the epoch is the
    stage's own, as its folds of the earlier rounds really took it (the slowest fold's steady epoch), so the
    rounds left aim at TARGET_SHARE of the budget from the clock with no ratio. Its price: folds of one stage
    that train a few epochs more or fewer than each other.

    done: run.json of every fold of the earlier stages and, under `stage`, of this stage's folds that have
    ended; stage_replan: the stage's budget_{stage}.json (the predictions still to come); pseudo_images: the
    most test images a fold of this round trains on (the pseudo stage), where known; rounds: how many rounds
    the DAG has (the plan's where None).
    """
    finished = done[stage]
    ratio = max(stage_epoch_seconds(run) / _stage_costs(plan, run.get("pseudo_images"))[stage] for run in finished)
    epoch = ratio * _stage_costs(plan, pseudo_images)[stage]
    configured = next(s["epochs"] for s in plan["stages"] if s["stage"] == stage)
    used, on_clock = _used(plan, done, time.time() if now is None else now, 0.0)
    rounds = max(1, (plan["rounds"] if rounds is None else rounds) - round_number + 1)  # this round and the later
    # a stage replan written before replans recorded their predictions: the plan's, at the stage's speed
    predict = stage_replan.get("predict_seconds")
    predict = stage_replan["speed_ratio"] * plan["predict_seconds"] if predict is None else predict
    budget = plan["budget_minutes"] * 60
    left = TARGET_SHARE * budget - plan["reserve_seconds"] - used - predict
    cap = max(1, math.floor(max_scale * configured))
    epochs = min(cap, max(1, math.floor(left / (rounds * epoch))))
    predicted = used + rounds * epochs * epoch + predict + plan["reserve_seconds"]
    epochs, predicted = _one_more(epochs, cap, predicted, rounds * epoch, budget)
    margin = max(0.0, budget - predicted)
    return {**_deadline(plan, finished, predict, last=on_clock), "stage": stage, "round": round_number,
            "epochs": {stage: epochs}, "speed_ratio": round(ratio, 3), "epoch_seconds": round(epoch, 2),
            "previous_epoch_seconds": round(max(stage_epoch_seconds(run) for run in finished), 2),
            "used_seconds": round(used, 1), "predicted_seconds": round(predicted, 1),
            "over_budget_seconds": round(max(0.0, predicted - budget), 1), "predict_seconds": round(predict, 1),
            "time_limit_s": round(epochs * epoch + margin / rounds, 1)}


def _deadline(plan: dict, previous: list[dict], predict: float, last: bool) -> dict:
    """{"deadline": clock} for the last stage's folds where `last` (the caller's: the last stage, and the
    budget's clock holds: not a resumed run): the
    budget's end less the reserve, all the predictions (the training rules go first, so they follow the last
    fold) and what a fold job does after its last epoch (weight averaging, BatchNorm measured again: the
    previous stage's jobs' seconds beyond their epochs). A fold's duration limit cannot see that the fold
    started late (its slot taken by other jobs); the deadline can. {} otherwise."""
    if not last:
        return {}
    after_fit = max(max(0.0, r["seconds"] - _job_epochs(r) * stage_epoch_seconds(r)) for r in previous)
    end = plan["budget_minutes"] * 60 - plan["reserve_seconds"] - predict - after_fit
    return {"deadline": round(plan["started"] + end, 1), "deadline_after_s": round(end, 1)}


def _stage_costs(plan: dict, pseudo_images: int | None) -> dict[str, float]:
    """Predicted seconds per epoch of each stage from the plan's step times; the pseudo stage's training
    steps from the test images it really got, where known."""
    costs = {}
    for s in plan["stages"]:
        train_steps = s["train_steps"]
        if s["stage"] == "pseudo" and pseudo_images is not None:
            train_steps = max(1, (s["own_images"] + pseudo_images) // s["batch_size"])
        costs[s["stage"]] = StageCost(s["stage"], s["epochs"], train_steps, s["valid_steps"], s["step_seconds"],
                                      s["valid_step_seconds"]).epoch_seconds
    return costs


if __name__ == "__main__":  # a measuring worker of measure_steps: the job as JSON in, the seconds as JSON out
    print(json.dumps(_measure_worker(json.loads(sys.argv[1]))))
