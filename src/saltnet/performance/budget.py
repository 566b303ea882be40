"""Epochs that fit a time budget: time this machine's steps, then scale the configured schedule.

With config `budget_minutes` set, rule plan_budget runs once before training: it times a training
step of each stage (the stage's model, size, batch and loss), a validation batch and the prediction
forward, in as many processes side by side as fold jobs will run at once, each with the fold jobs'
threads (two 1-thread folds on two cores do not run at the speed of one). From those it predicts the
DAG's wall time and scales every stage's `epochs` by one factor so the whole run fits the budget:
fewer epochs on a slow machine, more (at most MAX_SCALE times) on a fast one. Once the first stage
has ended in every fold, rule replan_finetune times the steps again and sets the finetune epochs from
the first stage's real times (replan_finetune below). The stages keep their one-cycle schedules, so a
plan is an ordinary run with other epoch counts; results/budget.json and results/budget_finetune.json
say what was measured, planned and predicted, so the run can be repeated with those epochs fixed.

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

__all__ = ["BUSY_LOAD_PER_CORE", "MAX_SCALE", "RESERVE_SECONDS", "LOOP_OVERHEAD", "StageCost", "plan_epochs",
           "measure_steps", "plan_budget", "replan_finetune"]

MAX_SCALE = 2.0  # at most twice the configured epochs: beyond that the schedule was never measured
RESERVE_SECONDS = 180.0  # job start-up, pack_data, split_folds, ensemble, reports: ~2 min in the CPU preset's runs
TIMED_STEPS = 10  # timed steps per measurement, after one warm-up step
# A 1-minute load average above this many runnable processes per core when the measurement begins:
# other work shares the CPU, the steps time slow and the plan gives too few epochs; budget.json records
# the load.
BUSY_LOAD_PER_CORE = 0.5
STARTUP_SECONDS = 15.0  # the measuring processes' imports; they all start timing this long after launch
# Predicted pipeline epoch = the bare steps' median time x LOOP_OVERHEAD (fastai's loop, batches cut
# and flipped, the metric, checkpoints), calibrated on full CPU-preset runs (docs/speed.md, the time
# budget); a plan that errs either way is mended by replan_finetune.
LOOP_OVERHEAD = 0.98


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


def plan_epochs(stages: list[StageCost], rounds: int, budget_seconds: float, other_seconds: float,
                max_scale: float = MAX_SCALE) -> dict:
    """Scale all stages' epochs by one factor so that `rounds` waves of fold jobs plus other_seconds
    (prediction, reserve) fit in budget_seconds -> {"scale", "epochs": {stage: n}, "predicted_seconds",
    "over_budget_seconds"}.

    Epochs are rounded down, but at least 1 each (which may end over budget: over_budget_seconds says by
    how much); raises ValueError when even one epoch per stage does not fit.
    """
    per_fold = sum(s.epochs * s.epoch_seconds for s in stages)
    available = budget_seconds - other_seconds
    minimum = rounds * sum(s.epoch_seconds for s in stages) + other_seconds
    if available <= 0 or minimum > budget_seconds:
        raise ValueError(
            f"config key budget_minutes: {budget_seconds / 60:g} min is too short on this machine: one epoch per "
            f"stage and the predictions need about {math.ceil(minimum / 60)} min as measured here; raise "
            "budget_minutes, or set it to null and choose the epochs yourself")
    scale = min(max_scale, available / (rounds * per_fold))
    epochs = {s.stage: max(1, math.floor(scale * s.epochs)) for s in stages}
    predicted = rounds * sum(epochs[s.stage] * s.epoch_seconds for s in stages) + other_seconds
    return {"scale": round(scale, 4), "epochs": epochs, "predicted_seconds": round(predicted, 1),
            "over_budget_seconds": round(max(0.0, predicted - budget_seconds), 1)}


def _time(step, n: int) -> float:
    """Median seconds of n calls of `step`, after one warm-up call (oneDNN primitives, allocation): the
    median, since the two processes side by side disturb single steps (means of 4 varied 15% between runs)."""
    step()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _measure_worker(job: dict) -> dict:
    """In a fresh process with job["threads"] threads: seconds per training step and per validation
    batch of each stage, and per prediction batch of job["predict_batch_size"] images (the last stage's model)."""
    import torch

    from saltnet.models import build_model, get_model_spec
    from saltnet.performance.bench import make_infer_step, make_train_step

    torch.set_num_threads(job["threads"])
    torch.manual_seed(0)
    # Start timing together: the processes must run side by side for the whole measurement, as the fold
    # jobs do (staggered start-ups had left one process timing alone: 77-97 s per epoch between plans).
    time.sleep(max(0.0, job["start_at"] - time.time()))
    out = {}
    for stage in job["stages"]:
        model = build_model(job["model"], "none", stage["size"]).to(memory_format=torch.channels_last)
        side = get_model_spec(job["model"]).input_size(stage["size"], job["native"])
        x = torch.randn(stage["batch_size"], 3, side, side).contiguous(memory_format=torch.channels_last)
        target = (torch.rand(stage["batch_size"], 1, job["native"], job["native"]) > 0.5).float()
        model.train()
        step = make_train_step(model, x, target, job["bf16"], loss=stage["loss"], aux_weight=stage["aux_weight"])
        out[stage["stage"]] = _time(step, job["steps"])
        model.eval()
        out[stage["stage"] + "_infer"] = _time(make_infer_step(model, x, job["bf16"]), job["steps"])
    x = torch.randn(job["predict_batch_size"], 3, side, side).contiguous(memory_format=torch.channels_last)
    out["predict"] = _time(make_infer_step(model, x, job["bf16"]), max(2, job["steps"] // 2))  # the last stage's model
    return out


def measure_steps(model: str, stages: list[dict], native: int, processes: int, threads: int, bf16: bool,
                  predict_batch_size: int, steps: int = TIMED_STEPS) -> dict:
    """Seconds per training step and per inference batch of each stage (dicts with stage, size,
    batch_size, loss), and per prediction batch of predict_batch_size images, timed in `processes`
    processes side by side with `threads` threads each, the slowest process's figure kept ->
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
                bf16: bool = False, predict_shifts: list = ()) -> dict:
    """The plan written to results/budget.json (see the module docstring).

    stages: per stage dicts with stage, epochs, size, batch_size, loss; fold_sizes: images per fold;
    predict_tta, predict_batch_size, predict_shifts: config predict's tta, batch_size and shifts.
    """
    from saltnet.inference.predict import tta_views
    from saltnet.training.fold import valid_count

    fold_threads = max(1, min(fold_threads, cores))  # Snakemake caps a job's threads at --cores
    parallel = max(1, min(len(fold_sizes), cores // fold_threads))
    rounds = math.ceil(len(fold_sizes) / parallel)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    seconds = measure_steps(model, stages, native, parallel, fold_threads, bf16, predict_batch_size)
    n_images, largest = sum(fold_sizes), max(fold_sizes)
    costs = []
    for stage in stages:
        batch = stage["batch_size"]
        n_train = n_images - min(fold_sizes)  # the largest training set of any fold
        scored = valid_count(largest, valid_fraction)
        costs.append(StageCost(stage["stage"], stage["epochs"], max(1, n_train // batch), math.ceil(scored / batch),
                               seconds[stage["stage"]], seconds[stage["stage"] + "_infer"]))
    views = len(tta_views(predict_tta, predict_shifts))
    predict_images = rounds * (largest + n_test) * views  # per process, flips and shifts included
    predict_seconds = _predict_seconds(predict_images, seconds["predict"], predict_batch_size)
    measured = time.perf_counter() - started
    plan = plan_epochs(costs, rounds, budget_minutes * 60, predict_seconds + RESERVE_SECONDS + measured)
    # What replan_finetune needs to time the steps again, as measure_steps' arguments (with the plan's
    # parallel_folds and fold_threads).
    keys = ("stage", "size", "batch_size", "loss", "aux_weight")
    remeasure = dict(model=model, stages=[{k: s[k] for k in keys} for s in stages],
                     native=native, bf16=bf16, predict_batch_size=predict_batch_size)
    return {**plan, "budget_minutes": budget_minutes, "parallel_folds": parallel, "rounds": rounds,
            "fold_threads": fold_threads, "predict_seconds": round(predict_seconds, 1),
            "predict_images": predict_images, "remeasure": remeasure,
            "reserve_seconds": RESERVE_SECONDS, "planning_seconds": round(measured, 1),
            "load_avg_1m": round(load, 2), "busy": load > BUSY_LOAD_PER_CORE * cores,
            "stages": [{**asdict(c), "epoch_seconds": c.epoch_seconds} for c in costs]}


def replan_finetune(plan: dict, train_runs: list[dict], measured: dict | None = None, measured_seconds: float = 0.0,
                    max_scale: float = MAX_SCALE) -> dict:
    """The finetune stage's epochs again, from what the first stage really took -> {"epochs":
    {"finetune": n}, "speed_ratio", "planned_speed_ratio" (real over the plan's first-stage epoch),
    "used_seconds", "finetune_epoch_seconds", "predicted_seconds", "over_budget_seconds", "remeasured"}.

    plan: budget.json; train_runs: the first stage's run.json of every fold (seconds, epochs, resumed_from_epoch);
    measured: measure_steps' seconds timed again now, after the first stage (plan["remeasure"]), and
    measured_seconds what that took; None: the plan's own measurement is used.
    A short measurement on a shared machine misses by 10-30% (its speed moves within minutes), so the
    stage the plan fixed first is not the last word. speed_ratio is the slowest fold's real seconds per
    first-stage epoch over those the measurement predicts (fastai's loop, the machine's speed since);
    the finetune epoch and the predictions are that measurement's times that ratio. Measured again
    here (nothing else runs then), both stages' times come from one moment: a plan measured on a busy CPU
    slows its stages unequally, so one ratio would mispredict the finetune. What is left of the budget
    after the planning, the first stage (its slowest fold's seconds, per round of folds) and this
    measurement goes to the finetune stage (1 to max_scale x its configured epochs; with 1 the run may end
    over budget, by over_budget_seconds as predicted).
    """
    train, finetune = (next(s for s in plan["stages"] if s["stage"] == name) for name in ("train", "finetune"))
    per_epoch = max(run["seconds"] / max(1, run["epochs"] - (run.get("resumed_from_epoch") or 0)) for run in train_runs)
    if measured is None:
        train_epoch, finetune_epoch = train["epoch_seconds"], finetune["epoch_seconds"]
        predict = plan["predict_seconds"]
    else:
        train_epoch, finetune_epoch = (StageCost(s["stage"], s["epochs"], s["train_steps"], s["valid_steps"],
                                                 measured[s["stage"]], measured[s["stage"] + "_infer"]).epoch_seconds
                                       for s in (train, finetune))
        predict = _predict_seconds(plan["predict_images"], measured["predict"], plan["remeasure"]["predict_batch_size"])
    ratio = per_epoch / train_epoch
    # Time at work, not on the clock (a fold stopped and rerun the next day has not used the night): each
    # round of folds side by side lasts as long as its slowest fold.
    used = plan["planning_seconds"] + plan["rounds"] * max(run["seconds"] for run in train_runs) + measured_seconds
    left = plan["budget_minutes"] * 60 - plan["reserve_seconds"] - used - ratio * predict
    epoch = ratio * finetune_epoch
    cap = max(1, math.floor(max_scale * finetune["epochs"]))
    epochs = min(cap, max(1, math.floor(left / (plan["rounds"] * epoch))))
    predicted = used + plan["rounds"] * epochs * epoch + ratio * predict + plan["reserve_seconds"]
    return {"epochs": {"finetune": epochs}, "speed_ratio": round(ratio, 3),
            "planned_speed_ratio": round(per_epoch / train["epoch_seconds"], 3), "used_seconds": round(used, 1),
            "finetune_epoch_seconds": round(epoch, 2), "predicted_seconds": round(predicted, 1),
            "over_budget_seconds": round(max(0.0, predicted - plan["budget_minutes"] * 60), 1),
            "remeasured": measured is not None}


if __name__ == "__main__":  # a measuring worker of measure_steps: the job as JSON in, the seconds as JSON out
    print(json.dumps(_measure_worker(json.loads(sys.argv[1]))))
