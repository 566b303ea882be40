"""budget_minutes: epochs planned from this machine's measured step times, applied by the fold jobs."""

import json

import pandas as pd
import pytest

from conftest import run_snakemake, write_config
from saltnet.performance.budget import LOOP_OVERHEAD, MAX_SCALE, StageCost, measure_steps, plan_epochs, replan_finetune

# Step times chosen so that the epochs (steps times LOOP_OVERHEAD) last 52 s and 62 s:
# per fold at the configured epochs 30 * 52 + 10 * 62 = 2180 s
STAGES = [StageCost("train", 30, 100, 10, 0.5 / LOOP_OVERHEAD, 0.2 / LOOP_OVERHEAD),
          StageCost("finetune", 10, 100, 10, 0.6 / LOOP_OVERHEAD, 0.2 / LOOP_OVERHEAD)]


def test_the_schedule_shrinks_to_fit_and_keeps_its_ratio():
    assert STAGES[0].epoch_seconds == pytest.approx(52) and STAGES[1].epoch_seconds == pytest.approx(62)
    plan = plan_epochs(STAGES, rounds=1, budget_seconds=1300, other_seconds=210)  # 1090 s: half of 2180
    assert plan["scale"] == pytest.approx(0.5)
    assert plan["epochs"] == {"train": 15, "finetune": 5}
    assert plan["predicted_seconds"] == pytest.approx(15 * 52 + 5 * 62 + 210)
    assert plan["predicted_seconds"] <= 1300


def test_rounds_of_folds_count_and_epochs_round_down():
    one, two = (plan_epochs(STAGES, rounds=r, budget_seconds=2000, other_seconds=0) for r in (1, 2))
    assert two["epochs"]["train"] < one["epochs"]["train"]
    assert two["predicted_seconds"] <= 2000 and one["predicted_seconds"] <= 2000
    assert one["epochs"] == {"train": 27, "finetune": 9}  # scale 0.917: 27.5 and 9.2 rounded down


def test_a_fast_machine_gets_more_epochs_but_at_most_max_scale():
    plan = plan_epochs(STAGES, rounds=1, budget_seconds=100_000, other_seconds=0)
    assert plan["scale"] == MAX_SCALE
    assert plan["epochs"] == {"train": int(30 * MAX_SCALE), "finetune": int(10 * MAX_SCALE)}


def test_a_budget_below_one_epoch_per_stage_is_an_error_naming_the_key():
    with pytest.raises(ValueError, match="budget_minutes: 1 min is too short.*about 4 min"):
        plan_epochs(STAGES, rounds=1, budget_seconds=60, other_seconds=100)
    with pytest.raises(ValueError, match="budget_minutes: 2 min is too short.*about 4 min"):  # time left, too little
        plan_epochs(STAGES, rounds=1, budget_seconds=120, other_seconds=100)


def test_rounding_up_to_one_epoch_says_how_far_over_budget_it_ends():
    stages = [StageCost("train", 30, 10, 0, 1 / LOOP_OVERHEAD, 0),
              StageCost("finetune", 2, 100, 0, 1 / LOOP_OVERHEAD, 0)]
    plan = plan_epochs(stages, rounds=1, budget_seconds=160, other_seconds=0)  # scale 0.32: 9.6 and 0.64 epochs
    assert plan["epochs"] == {"train": 9, "finetune": 1}
    assert plan["over_budget_seconds"] == pytest.approx(9 * 10 + 100 - 160)


def _plan(train_epoch=100.0, finetune_epoch=100.0) -> dict:
    """A budget.json of 60 min: 20 + 10 planned epochs of 100 s, 2 folds side by side, 120 s of predictions."""
    return {"budget_minutes": 60, "planning_seconds": 30.0, "rounds": 1, "reserve_seconds": 180.0,
            "predict_seconds": 120.0,
            "epochs": {"train": 20, "finetune": 10},
            "stages": [{"stage": "train", "epochs": 20, "epoch_seconds": train_epoch},
                       {"stage": "finetune", "epochs": 10, "epoch_seconds": finetune_epoch}]}


def _runs(seconds_per_epoch: float, epochs: int = 20, start: float = 1030.0) -> list[dict]:
    end = start + seconds_per_epoch * epochs
    return [{"start": start, "end": end, "seconds": end - start, "epochs": epochs, "resumed_from_epoch": None},
            {"start": start, "end": end - 50, "seconds": end - 50 - start, "epochs": epochs,
             "resumed_from_epoch": None}]


def test_a_first_stage_faster_than_planned_leaves_more_finetune_epochs():
    replan = replan_finetune(_plan(), _runs(75.0))  # 1500 s: 500 s ahead of the plan
    assert replan["speed_ratio"] == pytest.approx(0.75)  # the slowest fold
    # left: 3600 - 180 reserve - 1530 used - 0.75 * 120 = 1800 s; finetune epochs of 75 s: 24, capped at 2 x 10
    assert replan["epochs"] == {"finetune": 20} and replan["over_budget_seconds"] == 0


def test_a_first_stage_slower_than_planned_leaves_fewer():
    replan = replan_finetune(_plan(), _runs(120.0))  # 2400 s: the finetune epochs cost 120 s too
    # left: 3600 - 180 - 2430 - 1.2 * 120 = 846 s -> 7 epochs of 120 s; the end predicted inside the budget
    assert replan["epochs"] == {"finetune": 7}
    assert replan["predicted_seconds"] <= 3600 and replan["over_budget_seconds"] == 0


def test_a_first_stage_that_used_the_whole_budget_still_finetunes_one_epoch_and_says_by_how_much_it_is_over():
    replan = replan_finetune(_plan(), _runs(180.0))
    assert replan["epochs"] == {"finetune": 1} and replan["over_budget_seconds"] > 0


def test_a_fold_rerun_a_day_later_does_not_count_the_day_as_used():
    runs = _runs(120.0)
    runs[1] = {**runs[1], "start": runs[1]["start"] + 86_400, "end": runs[1]["end"] + 86_400}
    same_day = replan_finetune(_plan(), _runs(120.0))["epochs"]
    assert replan_finetune(_plan(), runs)["epochs"] == same_day == {"finetune": 7}


def test_timed_again_after_the_first_stage_the_finetune_epochs_come_from_that_measurement():
    """A plan measured on a busy CPU put the first stage's epochs at 140 s (real: 100 s) but the finetune's
    at 110 s (real: 120 s): its ratio alone would plan 78.6 s finetune epochs, 16 of them, 10 min over."""
    plan = {**_plan(train_epoch=140.0, finetune_epoch=110.0), "predict_images": 1000,
            "remeasure": {"predict_batch_size": 10}}
    plan["stages"] = [{**stage, "train_steps": 100, "valid_steps": 0} for stage in plan["stages"]]
    # timed again, quiet: steps that make epochs of 105 s and 126 s, and 10.5 s of predictions
    measured = {"train": 1.05 / LOOP_OVERHEAD, "train_infer": 0.5, "finetune": 1.26 / LOOP_OVERHEAD,
                "finetune_infer": 0.5,
                "predict": 0.105 / LOOP_OVERHEAD}
    runs = _runs(100.0)  # 2000 s
    old = replan_finetune(plan, runs)
    assert old["epochs"] == {"finetune": 16} and old["finetune_epoch_seconds"] == pytest.approx(110 / 1.4, abs=0.01)
    again = replan_finetune(plan, runs, measured, measured_seconds=40.0)
    assert again["remeasured"] and not old["remeasured"]
    assert again["planned_speed_ratio"] == old["speed_ratio"] == pytest.approx(100 / 140, abs=0.001)
    assert again["speed_ratio"] == pytest.approx(100 / 105, abs=0.001)
    assert again["finetune_epoch_seconds"] == pytest.approx(120)
    # left: 3600 - 180 reserve - (30 + 2000 + 40) used - (100 / 105) * 10.5 s of predictions = 1340 s: 11 epochs
    assert again["epochs"] == {"finetune": 11} and again["used_seconds"] == pytest.approx(2070)
    assert again["predicted_seconds"] == pytest.approx(30 + 2000 + 40 + 11 * 120 + 10 + 180)  # 3580 s
    assert again["over_budget_seconds"] == 0


@pytest.mark.process
def test_measured_step_times_are_real_and_positive():
    stages = [{"stage": "train", "size": 32, "batch_size": 2, "loss": "bce_dice", "aux_weight": 0.3},
              {"stage": "finetune", "size": 32, "batch_size": 2, "loss": "symmetric_lovasz", "aux_weight": 0.3}]
    seconds = measure_steps("resunet_scse_ds", stages, native=101, processes=1, threads=1, bf16=False,
                            predict_batch_size=64, steps=1)
    assert set(seconds) == {"train", "train_infer", "finetune", "finetune_infer", "predict"}
    assert all(0 < s < 30 for s in seconds.values())
    assert seconds["train"] > seconds["train_infer"]  # a training step also runs backward and Adam


@pytest.mark.snakemake
def test_the_dag_trains_the_planned_epochs(tmp_path):
    """A generous budget on the tiny config: MAX_SCALE times its 1 epoch per stage, the folds run them,
    and the run page shows the plan next to what the stages took."""
    write_config(tmp_path, budget_minutes=30, fold_threads="share")
    run_snakemake(tmp_path, "results/report/run/run.html")
    plan = json.loads((tmp_path / "results/budget.json").read_text())
    assert plan["epochs"] == {"train": int(MAX_SCALE), "finetune": int(MAX_SCALE)}
    replan = json.loads((tmp_path / "results/budget_finetune.json").read_text())
    assert replan["speed_ratio"] > 0 and replan["used_seconds"] > 0 and replan["remeasured"]
    plan["epochs"].update(replan["epochs"])  # what the finetune folds were given
    assert plan["parallel_folds"] == 2 and plan["fold_threads"] == 1  # --cores 2 shared by 2 folds
    assert 0 < plan["predicted_seconds"] <= 30 * 60 and plan["machine"]["cpu_capability"]
    assert plan["load_avg_1m"] >= 0 and isinstance(plan["busy"], bool)
    for stage in ("train", "finetune"):
        history = pd.read_parquet(tmp_path / f"results/{stage}/fold0/history.parquet")
        assert len(history) == plan["epochs"][stage]
        run = json.loads((tmp_path / f"results/{stage}/fold0/run.json").read_text())
        assert run["epochs"] == plan["epochs"][stage]
    page = (tmp_path / "results/report/run/run.html").read_text()
    assert "budget 30 min: every stage&#x27;s epochs scaled by 2" in page and "planned epochs" in page
    assert "finetune epochs were planned again" in page


def test_the_run_page_says_when_the_plan_was_measured_on_a_busy_cpu(tmp_path):
    from saltnet.report.run_page import _budget_section

    folds = pd.DataFrame({"stage": ["train", "finetune"], "fold": [0, 0], "seconds": [100.0, 50.0]})
    plan = {**_plan(), "budget_minutes": 80, "scale": 1.0, "parallel_folds": 2, "fold_threads": 1, "rounds": 1,
            "predicted_seconds": 4000.0, "predict_seconds": 80.0, "reserve_seconds": 180.0, "planning_seconds": 50.0,
            "load_avg_1m": 1.62, "busy": True}
    path = tmp_path / "budget.json"
    path.write_text(json.dumps(plan))
    assert "The CPU was busy when it was measured (1-minute load average 1.62)" in _budget_section(path, folds)
    path.write_text(json.dumps({**plan, "load_avg_1m": 0.2, "busy": False}))
    assert "busy" not in _budget_section(path, folds)


@pytest.mark.snakemake
def test_a_budget_too_short_fails_before_training(tmp_path):
    write_config(tmp_path, budget_minutes=0.01)
    proc = run_snakemake(tmp_path, "results/finetune/fold0/history.parquet", check=False)
    assert proc.returncode != 0
    log = (tmp_path / "logs/plan_budget/plan_budget.log").read_text()
    assert "budget_minutes: 0.01 min is too short" in log
    assert not (tmp_path / "results/budget.json").exists()
    assert not (tmp_path / "results/train").exists()


def test_plan_counts_every_tta_view(monkeypatch):
    """Prediction is planned per view: the flip doubles it, each shift (with its flip) adds two more."""
    from saltnet.performance import budget

    seconds = {"train": 0.5, "train_infer": 0.1, "finetune": 0.5, "finetune_infer": 0.1, "predict": 0.2}
    monkeypatch.setattr(budget, "measure_steps", lambda *args, **kwargs: seconds)
    stages = [{"stage": s, "epochs": 4, "size": 128, "batch_size": 16, "loss": "bce", "aux_weight": 0.3}
              for s in ("train", "finetune")]
    plans = {name: budget.plan_budget(600, "resunet_scse_ds", stages, [100, 100], 1.0, tta, 50, 300, 101, 2, 1,
                                      predict_shifts=shifts)
             for name, tta, shifts in [("plain", False, []), ("flip", True, []),
                                       ("flip_shifts", True, [[0, 8], [0, -8], [0, 0]])]}
    images = {name: plan["predict_images"] for name, plan in plans.items()}
    assert images == {"plain": 400, "flip": 800, "flip_shifts": 2400}  # (100 + 300) per round x views
    assert plans["flip_shifts"]["predict_seconds"] == pytest.approx(3 * plans["flip"]["predict_seconds"], abs=0.2)
