"""budget_minutes: epochs planned from this machine's measured step times, applied by the fold jobs."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from conftest import run_snakemake, write_config
from saltnet.performance.budget import (
    LAST_STAGE_CEILING,
    LOOP_OVERHEAD,
    MAX_SCALE,
    TARGET_SHARE,
    StageCost,
    fold_rounds,
    measure_steps,
    plan_epochs,
    replan_round,
    replan_stage,
    used_seconds,
)

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


def test_the_plan_aims_at_the_target_share_of_the_budget():
    plan = plan_epochs(STAGES, rounds=1, budget_seconds=2180 / TARGET_SHARE, other_seconds=0, target_share=TARGET_SHARE)
    assert plan["scale"] == pytest.approx(1.0) and plan["epochs"] == {"train": 30, "finetune": 10}
    with pytest.raises(ValueError, match="budget_minutes: 1 min is too short"):  # the budget named, not the target
        plan_epochs(STAGES, rounds=1, budget_seconds=60, other_seconds=100, target_share=TARGET_SHARE)


def test_a_budget_within_the_reserve_is_refused_before_any_timing(monkeypatch):
    """0.5 min leaves nothing after the 45 s reserve: refused at once, not after minutes of timed steps."""
    from saltnet.performance import budget

    def timed(*args, **kwargs):
        raise AssertionError("the steps were timed")

    monkeypatch.setattr(budget, "measure_steps", timed)
    stage = {"stage": "train", "epochs": 1, "size": 32, "batch_size": 2, "loss": "bce_dice"}
    with pytest.raises(ValueError, match=r"budget_minutes: 0.5 min is too short: the jobs after training alone"):
        budget.plan_budget(0.5, "resunet_scse_ds", [stage], [10, 10], 0.5, True, 8, 4, 101, 2, 1)
    with pytest.raises(AssertionError, match="timed"):  # one second more than the reserve goes on to the timing
        budget.plan_budget((budget.RESERVE_SECONDS + 1) / 60, "resunet_scse_ds", [stage], [10, 10], 0.5, True, 8, 4,
                           101, 2, 1)


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


def _stage(name: str, epochs: int, epoch_seconds: float = 100.0, own: int = 1600, batch: int = 16) -> dict:
    """A stage of budget.json: `epochs` configured, epochs of epoch_seconds (own // batch steps, no scoring)."""
    steps = own // batch
    return {"stage": name, "epochs": epochs, "train_steps": steps, "valid_steps": 0,
            "step_seconds": epoch_seconds / steps / LOOP_OVERHEAD, "valid_step_seconds": 0.0,
            "epoch_seconds": epoch_seconds, "batch_size": batch, "own_images": own}


def _plan(*stages) -> dict:
    """A budget.json of 60 min begun at t = 1000 s: one round of folds, 120 s of predictions, 30 s planning."""
    stages = stages or (_stage("train", 20), _stage("finetune", 10))
    return {"budget_minutes": 60, "planning_seconds": 30.0, "rounds": 1, "reserve_seconds": 180.0,
            "predict_seconds": 120.0, "started": 1000.0, "epochs": {s["stage"]: s["epochs"] for s in stages},
            "stages": list(stages)}


def _runs(seconds_per_epoch: float, epochs: int = 20, start: float = 1030.0) -> list[dict]:
    """Two folds side by side, the second 50 s shorter; their steady epochs as run.json records them."""
    end = start + seconds_per_epoch * epochs
    return [{"start": start, "end": end, "seconds": end - start, "epochs": epochs, "resumed_from_epoch": 0,
             "epoch_seconds": seconds_per_epoch},
            {"start": start, "end": end - 50, "seconds": end - 50 - start, "epochs": epochs,
             "resumed_from_epoch": 0, "epoch_seconds": seconds_per_epoch - 2.5}]


def test_a_first_stage_faster_than_planned_hands_the_finetune_the_rest_of_the_budget():
    runs = _runs(75.0)  # 1500 s: 500 s ahead of the plan
    replan = replan_stage(_plan(), "finetune", {"train": runs}, now=runs[0]["end"])
    assert replan["speed_ratio"] == pytest.approx(0.75)  # the slowest fold's steady epoch over the planned one
    # used 1530 s by the clock; left: 0.975 * 3600 - 180 reserve - 1530 - 0.75 * 120 predictions = 1710 s:
    # 22 finetune epochs of 75 s (end 1530 + 1650 + 90 + 180 = 3450 s); the last stage rounds up where the
    # end stays under LAST_STAGE_CEILING: 23 epochs, 3525 s <= 0.99 * 3600, within the budget's last 5%
    assert replan["epochs"] == {"finetune": 23} and replan["used_seconds"] == pytest.approx(1530)
    assert replan["predicted_seconds"] == pytest.approx(3525)
    assert 0.95 * 3600 <= replan["predicted_seconds"] <= LAST_STAGE_CEILING * 3600
    assert replan["over_budget_seconds"] == 0
    assert replan["time_limit_s"] == pytest.approx(23 * 75 + 75)  # its epochs and the margin to the budget


def test_a_first_stage_slower_than_planned_leaves_fewer():
    runs = _runs(120.0)  # 2400 s: the finetune epochs cost 120 s too
    replan = replan_stage(_plan(), "finetune", {"train": runs}, now=runs[0]["end"])
    # left: 3510 - 180 - 2430 - 144 = 756 s -> 6 epochs of 120 s, end 3474 s; a 7th would end at 3594 s,
    # past LAST_STAGE_CEILING of the budget (3564 s): not rounded up
    assert replan["epochs"] == {"finetune": 6} and replan["predicted_seconds"] == pytest.approx(3474)


def test_the_clock_counts_what_the_fold_jobs_do_not():
    """Snakemake's scheduling and the jobs between the stages use the budget too: the clock says so."""
    runs = _runs(100.0)
    on_time = replan_stage(_plan(), "finetune", {"train": runs}, now=runs[0]["end"])
    late = replan_stage(_plan(), "finetune", {"train": runs}, now=runs[0]["end"] + 300)
    assert late["used_seconds"] == on_time["used_seconds"] + 300
    assert late["epochs"]["finetune"] == on_time["epochs"]["finetune"] - 3


def test_a_first_stage_that_used_the_whole_budget_still_finetunes_one_epoch_and_says_by_how_much_it_is_over():
    runs = _runs(180.0)
    replan = replan_stage(_plan(), "finetune", {"train": runs}, now=runs[0]["end"])
    assert replan["epochs"] == {"finetune": 1} and replan["over_budget_seconds"] > 0


def test_a_run_resumed_a_day_later_counts_its_time_at_work_not_the_night():
    runs = _runs(120.0)
    runs[1] = {**runs[1], "start": runs[1]["start"] + 86_400, "end": runs[1]["start"] + 86_400 + 1200,
               "resumed_from_epoch": 10}
    used = used_seconds(_plan(), {"train": runs}, now=runs[1]["end"])
    assert used == pytest.approx(30 + 2400 + 1200)  # planning and the two folds' own spans, not the day


def test_the_finetune_keeps_room_for_the_pseudo_stage_which_gets_what_is_left():
    # the plan counts all 800 test images in the pseudo stage's steps: 150 steps of the finetune's 1 s
    pseudo_stage = {**_stage("pseudo", 10), "train_steps": 150, "epoch_seconds": 150.0}
    plan = _plan(_stage("train", 20), _stage("finetune", 10), pseudo_stage)
    runs = _runs(75.0)
    finetune = replan_stage(plan, "finetune", {"train": runs}, now=runs[0]["end"])
    # one factor for both stages to come: 1710 s over 10 x 75 + 10 x 112.5 = 1875 s -> 0.912: 9 + 9 epochs
    assert finetune["epochs"] == {"finetune": 9}
    assert finetune["predicted_seconds"] <= TARGET_SHARE * 3600
    # its guard leaves room for the pseudo stage's replan to take back all but one of its epochs
    assert finetune["time_limit_s"] >= 9 * 75 + 8 * 112.5
    done = {"train": runs, "finetune": _runs(75.0, epochs=9, start=runs[0]["end"])}
    now = done["finetune"][0]["end"]
    # the pseudo stage's epochs from the finetune's real ones: it got 800 test images beside its 1600, so
    # its epoch is 1.5 x the finetune's 75 s; what is left of the budget is all its own
    pseudo = replan_stage(plan, "pseudo", done, now=now, pseudo_images=800, later_predict_seconds=60.0)
    assert pseudo["epoch_seconds"] == pytest.approx(112.5)
    left = TARGET_SHARE * 3600 - 180 - (now - 1000) - 60
    assert pseudo["epochs"] == {"pseudo": int(left // 112.5)}
    assert 0.95 * 3600 <= pseudo["predicted_seconds"] <= 3600


def test_the_last_stage_gets_a_deadline_on_the_budgets_clock_and_earlier_stages_none():
    pseudo_stage = {**_stage("pseudo", 10), "train_steps": 150, "epoch_seconds": 150.0}
    plan = _plan(_stage("train", 20), _stage("finetune", 10), pseudo_stage)
    runs = _runs(75.0)
    assert "deadline" not in replan_stage(plan, "finetune", {"train": runs}, now=runs[0]["end"])
    finetune = _runs(75.0, epochs=9, start=runs[0]["end"])
    finetune[0] = {**finetune[0], "seconds": finetune[0]["seconds"] + 40}  # 40 s after its last epoch
    now = finetune[0]["end"] + 40
    pseudo = replan_stage(plan, "pseudo", {"train": runs, "finetune": finetune}, now=now, later_predict_seconds=60.0)
    # the budget's end (started at 1000 s, 3600 s) less the reserve (180 s), all the predictions and the 40 s
    assert pseudo["deadline"] == pytest.approx(1000 + 3600 - 180 - 60 - 40)
    assert pseudo["deadline_after_s"] == pytest.approx(3600 - 180 - 60 - 40)
    # a run resumed a day later: the plan's clock no longer holds, so no deadline
    resumed = [{**r, "resumed_from_epoch": 4} for r in finetune]
    assert "deadline" not in replan_stage(plan, "pseudo", {"train": runs, "finetune": resumed}, now=now + 86_400)


def test_folds_train_in_rounds_of_what_fits_side_by_side_on_the_cores():
    assert fold_rounds(4, cores=2, fold_threads=1) == (2, 2)
    assert fold_rounds(3, cores=2, fold_threads=1) == (2, 2)
    assert fold_rounds(4, cores=8, fold_threads=2) == (4, 1)
    assert fold_rounds(4, cores=2, fold_threads=4) == (1, 4)  # Snakemake caps a job's threads at --cores


def test_a_later_round_of_the_last_stage_takes_its_epochs_from_the_rounds_before_not_from_a_ratio():
    """Four folds two at a time: the finetune's replan put its epoch at 50 s (the first stage's real 50 s
    times the plan's cost ratio), its first round really took 47.5 s; the second round's epochs come from
    those and the clock, and the run ends within the budget's last 5% where it would have ended 6.5% early."""
    plan = {**_plan(_stage("train", 20), _stage("finetune", 30)), "rounds": 2}
    train = _runs(50.0, epochs=10) + _runs(50.0, epochs=10, start=1530.0)  # two rounds, ending at 2030 s
    stage = replan_stage(plan, "finetune", {"train": train}, now=2030.0)
    # left: 3510 - 180 - 1030 - 60 predictions = 2240 s for 2 rounds of 50 s epochs: 22 each, end 3470 s
    assert stage["epochs"] == {"finetune": 22} and stage["predict_seconds"] == pytest.approx(60)
    first = _runs(47.5, epochs=22, start=2030.0)  # 5% faster than predicted: ends at 3075 s
    done = {"train": train, "finetune": first}
    assert 2080 + 22 * 47.5 + 60 + 180 < 0.95 * 3600  # the second round at 22 epochs would end early
    again = replan_round(plan, stage, "finetune", 2, done, now=3080.0)
    # left: 3510 - 180 - 2080 - 60 = 1190 s: 25 epochs of 47.5 s, end 3507.5 s, and one more under the ceiling
    assert again["epochs"] == {"finetune": 26} and again["round"] == 2
    assert again["epoch_seconds"] == pytest.approx(47.5) and again["speed_ratio"] == pytest.approx(0.475)
    assert again["predicted_seconds"] == pytest.approx(3555)
    assert 0.95 * 3600 <= again["predicted_seconds"] <= LAST_STAGE_CEILING * 3600
    assert again["time_limit_s"] == pytest.approx(26 * 47.5 + 45)  # its epochs and the margin to the budget
    # the budget's end less the reserve, the predictions and the 5 s the first round's folds took after fitting
    assert again["deadline"] == pytest.approx(1000 + 3600 - 180 - 60 - 5)
    late = replan_round(plan, stage, "finetune", 2, done, now=3080.0 + 475)  # the clock counts: 10 epochs fewer
    assert late["epochs"] == {"finetune": 16}


def test_a_later_round_of_the_pseudo_stage_counts_the_test_images_its_folds_got():
    """The pseudo stage's epoch grows with the test images a fold trains on: the second round's from the
    first round's seconds per planned step, at this round's images."""
    pseudo = _stage("pseudo", 10)  # 100 steps of 1 s planned: 1600 own images, batch 16
    plan = {**_plan(_stage("train", 20), _stage("finetune", 10), pseudo), "rounds": 2}
    runs = _runs(56.0, epochs=5, start=3000.0)
    runs[0]["pseudo_images"], runs[1]["pseudo_images"] = 200, 100  # 112 and 106 planned steps
    runs[1]["epoch_seconds"] = 50.0
    done = {"train": _runs(50.0), "finetune": _runs(50.0, start=2030.0), "pseudo": runs}
    again = replan_round(plan, {"predict_seconds": 60.0, "speed_ratio": 0.5}, "pseudo", 2, done, now=3300.0,
                         pseudo_images=400)
    assert again["speed_ratio"] == pytest.approx(0.5)  # 56 s of 112 planned, the slower of the two
    assert again["epoch_seconds"] == pytest.approx(0.5 * 125)  # (1600 + 400) // 16 steps
    # a stage replan written before replans recorded their predictions: the plan's 120 s at its speed, 0.5
    older = replan_round(plan, {"speed_ratio": 0.5}, "pseudo", 2, done, now=3300.0, pseudo_images=400)
    assert older["predict_seconds"] == pytest.approx(60.0) and older["epochs"] == again["epochs"]


def test_a_fold_job_drops_a_deadline_the_clock_passed_long_ago(tmp_path):
    from saltnet.performance.budget import RESUMED_GAP_SECONDS
    from saltnet.steps import planned_deadline

    path = tmp_path / "budget_pseudo.json"
    path.write_text(json.dumps({"epochs": {"pseudo": 3}, "time_limit_s": 400.0, "deadline": 5000.0}))
    assert planned_deadline(path, now=4000.0) == 5000.0
    assert planned_deadline(path, now=5000.0 + RESUMED_GAP_SECONDS / 2) == 5000.0  # late: the guard stops it
    assert planned_deadline(path, now=5000.0 + RESUMED_GAP_SECONDS + 1) is None  # stopped and resumed
    path.write_text(json.dumps({"epochs": {"finetune": 3}, "time_limit_s": 400.0}))
    assert planned_deadline(path, now=4000.0) is None


@pytest.mark.process
def test_measured_step_times_are_real_and_positive():
    aux = {"aux_weight": 0.3, "aux_resolution": "output"}
    stages = [{"stage": "train", "size": 32, "batch_size": 2, "loss": "bce_dice", **aux},
              {"stage": "finetune", "size": 32, "batch_size": 2, "loss": "symmetric_lovasz", **aux,
               "augment": {"p": 1.0, "shift": 0.1, "scale": 0.1, "brightness": 0.1}}]  # timed with the warps
    seconds = measure_steps("resunet_scse_ds", stages, native=101, processes=1, threads=1, bf16=False,
                            predict_batch_size=64, steps=1)
    assert set(seconds) == {"train", "train_infer", "finetune", "finetune_infer", "predict"}
    assert all(0 < s < 30 for s in seconds.values())
    assert seconds["train"] > seconds["train_infer"]  # a training step also runs backward and Adam


@pytest.mark.snakemake
def test_the_dag_trains_the_planned_epochs(tmp_path):
    """A generous budget on the tiny config with a pseudo stage and small masks repeated: MAX_SCALE times its
    1 epoch per stage, each later stage replanned with a time limit, the last stage again before its folds'
    second round, and the run page shows the plan next to what the stages took.

    fold_threads 2 on --cores 2: one fold at a time as the DAG plans it, two rounds (conftest's --set-threads
    runs the train and finetune jobs on 1 thread each, so those folds still run side by side)."""
    pseudo = {"size": 64, "epochs": 1, "batch_size": 8, "lr": 1e-3, "wd": 1e-7}
    write_config(tmp_path, budget_minutes=30, fold_threads=2, pseudo=pseudo, repeat=["small_masks"],
                 pseudo_labels={"low": 0.3, "high": 0.7, "share": 0.5})
    run_snakemake(tmp_path, "results/report/run/run.html")
    plan = json.loads((tmp_path / "results/budget.json").read_text())
    assert plan["epochs"] == {"train": int(MAX_SCALE), "finetune": int(MAX_SCALE), "pseudo": int(MAX_SCALE)}
    assert plan["parallel_folds"] == 1 and plan["fold_threads"] == 2 and plan["rounds"] == 2
    again = json.loads((tmp_path / "results/budget_pseudo_round2.json").read_text())
    assert again["folds"] == [1] and again["round"] == 2 and again["time_limit_s"] > 0
    second = json.loads((tmp_path / "results/pseudo/fold1/run.json").read_text())
    first = json.loads((tmp_path / "results/pseudo/fold0/run.json").read_text())
    assert second["start"] >= first["end"]  # it waited for the round before it
    # fold 0's prediction waited for that replan too: no prediction takes a core from a waiting round
    mtime = {name: (tmp_path / "results" / name).stat().st_mtime for name in ("predict/fold0/oof.npz",
                                                                            "budget_pseudo_round2.json")}
    assert mtime["predict/fold0/oof.npz"] > mtime["budget_pseudo_round2.json"]
    assert second["epochs"] == again["epochs"]["pseudo"] and second["deadline"] == again["deadline"]
    assert 0 < plan["predicted_seconds"] <= 30 * 60 and plan["machine"]["cpu_capability"]
    assert plan["load_avg_1m"] >= 0 and isinstance(plan["busy"], bool)
    for stage in ("finetune", "pseudo"):
        replan = json.loads((tmp_path / f"results/budget_{stage}.json").read_text())
        assert replan["speed_ratio"] > 0 and replan["used_seconds"] > 0 and replan["time_limit_s"] > 0
        plan["epochs"].update(replan["epochs"])  # what the folds of the stage were given
    for stage in ("train", "finetune", "pseudo"):
        history = pd.read_parquet(tmp_path / f"results/{stage}/fold0/history.parquet")
        assert len(history) == plan["epochs"][stage]
        run = json.loads((tmp_path / f"results/{stage}/fold0/run.json").read_text())
        assert run["epochs"] == plan["epochs"][stage] and run["time_limit_s"] > 0
        # the last stage alone trains against the budget's clock, which ends after the fold did
        assert (run["deadline"] is not None) == (stage == "pseudo")
    assert plan["started"] + 30 * 60 > run["deadline"] > run["end"]
    table = pd.read_parquet(tmp_path / "results/folds.parquet")
    for fold in (0, 1):  # fold k's labels come from fold k's finetune model alone; its OOF is its own images
        labels = json.loads((tmp_path / f"results/pseudo/fold{fold}/labels.json").read_text())
        assert labels["model"] == f"results/finetune/fold{fold}/model.pth" and labels["test_images"] == 8
        run = json.loads((tmp_path / f"results/pseudo/fold{fold}/run.json").read_text())
        assert run["pseudo_images"] == labels["kept"]
        log = (tmp_path / f"logs/predict_fold/fold{fold}.log").read_text()
        assert f"results/pseudo/fold{fold}/model.pth" in log  # the last stage's models predict
        ids = np.load(tmp_path / f"results/predict/fold{fold}/oof.npz")["ids"]
        assert len(set(ids)) == len(ids) and set(ids) == set(table.loc[table["fold"] == fold, "id"])
    page = (tmp_path / "results/report/run/run.html").read_text()
    assert "budget 30 min: every stage&#x27;s epochs scaled by 3" in page and "planned epochs" in page
    assert "Replanned after the stage before it" in page and "real epoch (s), slowest fold" in page
    assert "Replanned before round 2 of its folds" in page and "pseudo, round 2" in page


def _fold_jobs(dry_run_stdout: str) -> dict[tuple[str, str], str]:
    """(rule, output) -> its `input:` line, from a dry run's job blocks."""
    blocks = re.findall(r"^rule (\w+):\n    input: (.*)\n    output: (.*)$", dry_run_stdout, re.M)
    return {(rule, output.split(",")[0]): inputs for rule, inputs, output in blocks}


@pytest.mark.snakemake
def test_the_last_stage_is_replanned_before_each_later_round_of_its_folds(tmp_path):
    """4 folds on --cores 2 train in two rounds: the finetune's folds 2 and 3 take rule replan_round's
    epochs, which waits for folds 0 and 1; on --cores 4 the four are one round, and without a budget there
    is no replan."""
    write_config(tmp_path, budget_minutes=30, fold_threads="share", folds={"n": 4, "seed": 42})
    jobs = _fold_jobs(run_snakemake(tmp_path, "-n").stdout)
    replan = jobs[("replan_round", "results/budget_finetune_round2.json")]
    assert "results/finetune/fold0/run.json" in replan and "results/finetune/fold1/run.json" in replan
    assert "results/finetune/fold2" not in replan and "results/train/fold3/run.json" in replan
    for fold, budget in ((0, "budget_finetune.json"), (2, "budget_finetune_round2.json")):
        assert f"results/{budget}" in jobs[("finetune_fold", f"results/finetune/fold{fold}/model.pth")]
    one_round = _fold_jobs(run_snakemake(tmp_path, "-n", "--cores", "4").stdout)
    assert not any(rule == "replan_round" for rule, _ in one_round)
    write_config(tmp_path, budget_minutes=None, fold_threads="share", folds={"n": 4, "seed": 42})
    assert not any(rule.startswith("replan") for rule, _ in _fold_jobs(run_snakemake(tmp_path, "-n").stdout))


def test_the_run_page_says_when_the_plan_was_measured_on_a_busy_cpu(tmp_path):
    from saltnet.report.run_page import _budget_section

    folds = pd.DataFrame({"stage": ["train", "finetune"], "fold": [0, 0], "seconds": [100.0, 50.0],
                          "epochs": [20, 10], "epoch_seconds": [5.0, 5.0]})
    plan = {**_plan(), "budget_minutes": 80, "scale": 1.0, "parallel_folds": 2, "fold_threads": 1, "rounds": 1,
            "predicted_seconds": 4000.0, "predict_seconds": 80.0, "reserve_seconds": 180.0, "planning_seconds": 50.0,
            "load_avg_1m": 1.62, "busy": True}
    path = tmp_path / "budget.json"
    path.write_text(json.dumps(plan))
    assert "The CPU was busy when it was measured (1-minute load average 1.62)" in _budget_section(path, folds)
    path.write_text(json.dumps({**plan, "load_avg_1m": 0.2, "busy": False}))
    assert "busy" not in _budget_section(path, folds)


def test_a_plan_that_halves_the_epochs_advises_fewer_folds():
    from saltnet.performance.budget import FEW_EPOCHS_SCALE, fewer_folds_advice

    slow = {"scale": 0.34, "epochs": {"train": 4, "finetune": 13}, "folds_run": [0, 1, 2, 3]}
    advice = fewer_folds_advice(slow, 4)
    assert "0.34 of the configured epochs" in advice and "folds={n: 2}'" in advice and "pseudo=null" not in advice
    with_pseudo = fewer_folds_advice({**slow, "epochs": {**slow["epochs"], "pseudo": 2}}, 4)
    assert with_pseudo.endswith("'folds={n: 2}' pseudo=null")  # the measured variant drops the stage too
    assert "folds={n: 5}" in fewer_folds_advice({**slow, "folds_run": list(range(10))}, 10)
    assert fewer_folds_advice({**slow, "scale": FEW_EPOCHS_SCALE}, 4) is None  # half the epochs or more: none
    assert fewer_folds_advice({**slow, "folds_run": [0, 1]}, 2) is None  # 2 folds are the fewest
    assert fewer_folds_advice({**slow, "folds_run": [0]}, 4) is None  # a proxy of one fold: left alone


def test_the_run_page_shows_the_plans_advice(tmp_path):
    from saltnet.report.run_page import _budget_section

    folds = pd.DataFrame({"stage": ["train"], "fold": [0], "seconds": [100.0], "epochs": [4], "epoch_seconds": [25.0]})
    plan = {**_plan(), "budget_minutes": 88, "scale": 0.34, "parallel_folds": 2, "fold_threads": 1, "rounds": 2,
            "predicted_seconds": 4700.0, "predict_seconds": 80.0, "reserve_seconds": 90.0, "planning_seconds": 50.0,
            "load_avg_1m": 0.2, "busy": False, "advice": "consider fewer folds"}
    path = tmp_path / "budget.json"
    path.write_text(json.dumps(plan))
    assert "Advice: consider fewer folds" in _budget_section(path, folds)
    path.write_text(json.dumps({**plan, "advice": None}))
    assert "Advice" not in _budget_section(path, folds)


@pytest.mark.snakemake
def test_a_budget_too_short_fails_before_training(tmp_path):
    write_config(tmp_path, budget_minutes=0.01)
    proc = run_snakemake(tmp_path, "results/finetune/fold0/history.parquet", check=False)
    assert proc.returncode != 0
    log = (tmp_path / "logs/plan_budget/plan_budget.log").read_text()
    assert "budget_minutes: 0.01 min is too short" in log
    assert not (tmp_path / "results/budget.json").exists()
    assert not (tmp_path / "results/train").exists()


def test_the_stages_are_timed_in_turns_after_their_warm_up():
    """Every step warms up first, then the rounds call each in turn: a machine that changes speed while it
    is measured moves every stage's median alike."""
    from saltnet.performance.budget import _time_interleaved

    calls = []
    seconds = _time_interleaved({"train": lambda: calls.append("t"), "finetune": lambda: calls.append("f")}, 3,
                                warmup=2)
    assert calls == ["t", "t", "f", "f", "t", "f", "t", "f", "t", "f"]
    assert set(seconds) == {"train", "finetune"} and all(v >= 0 for v in seconds.values())


def test_plan_counts_every_tta_view(monkeypatch):
    """Prediction is planned per view: the flip doubles it, each shift (with its flip) adds two more."""
    from saltnet.performance import budget

    seconds = {"train": 0.5, "train_infer": 0.1, "finetune": 0.5, "finetune_infer": 0.1, "predict": 0.2}
    monkeypatch.setattr(budget, "measure_steps", lambda *args, **kwargs: seconds)
    stages = [{"stage": s, "epochs": 4, "size": 128, "batch_size": 16, "loss": "bce", "aux_weight": 0.3,
               "aux_resolution": "output"} for s in ("train", "finetune")]
    plans = {name: budget.plan_budget(600, "resunet_scse_ds", stages, [100, 100], 1.0, tta, 50, 300, 101, 2, 1,
                                      predict_shifts=shifts)
             for name, tta, shifts in [("plain", False, []), ("flip", True, []),
                                       ("flip_shifts", True, [[0, 8], [0, -8], [0, 0]])]}
    images = {name: plan["predict_images"] for name, plan in plans.items()}
    assert images == {"plain": 400, "flip": 800, "flip_shifts": 2400}  # (100 + 300) per round x views
    assert plans["flip_shifts"]["predict_seconds"] == pytest.approx(3 * plans["flip"]["predict_seconds"], abs=0.2)


def test_plan_of_a_proxy_counts_only_the_folds_that_run(monkeypatch):
    """folds.run [0] of a 4-fold split: one fold job, alone on the cores, training on the other three folds'
    images; the plan for all four folds runs two rounds of two folds and gives each fewer epochs."""
    from saltnet.performance import budget

    seconds = {"train": 0.05, "train_infer": 0.01, "finetune": 0.05, "finetune_infer": 0.01, "predict": 0.02}
    monkeypatch.setattr(budget, "measure_steps", lambda *args, **kwargs: seconds)
    stages = [{"stage": s, "epochs": 4, "size": 128, "batch_size": 16, "loss": "bce", "aux_weight": 0.3,
               "aux_resolution": "output"} for s in ("train", "finetune")]

    def plan(run):
        return budget.plan_budget(4, "resunet_scse_ds", stages, [750, 750, 750, 750], 1.0, False, 50, 1000, 101,
                                  2, 1, run=run)

    every, proxy = plan(None), plan([0])
    assert (every["rounds"], every["parallel_folds"], every["folds_run"]) == (2, 2, [0, 1, 2, 3])
    assert (proxy["rounds"], proxy["parallel_folds"], proxy["folds_run"]) == (1, 1, [0])
    assert proxy["stages"][0]["train_steps"] == every["stages"][0]["train_steps"] == 2250 // 16
    assert proxy["predict_images"] == 750 + 1000
    assert proxy["epochs"]["train"] > 1.5 * every["epochs"]["train"]


def test_plan_counts_each_predicting_model(monkeypatch):
    """config predict.stages of two models: each predicts its fold's images and the test set, beside the
    finetune models' labelling of the test set for the pseudo stage; so does the pseudo stage's replan."""
    from saltnet.performance import budget

    seconds = {f"{s}{part}": 0.05 for s in ("train", "finetune", "pseudo") for part in ("", "_infer")}
    monkeypatch.setattr(budget, "measure_steps", lambda *args, **kwargs: {**seconds, "predict": 0.02})
    stages = [{"stage": s, "epochs": 4, "size": 128, "batch_size": 16, "loss": "bce", "aux_weight": 0.3,
               "aux_resolution": "output"} for s in ("train", "finetune", "pseudo")]
    one, two = (budget.plan_budget(60, "resunet_scse_ds", stages, [750] * 4, 1.0, False, 50, 1000, 101, 2, 1,
                                   predict_models=n) for n in (1, 2))
    # 2 rounds of (one model's fold and test images + the labelling's test images)
    assert one["predict_images"] == 2 * (750 + 1000 + 1000)
    assert two["predict_images"] == 2 * (2 * (750 + 1000) + 1000)
    assert two["predict_seconds"] > one["predict_seconds"]
    labelled = [{"seconds": 10.0, "test_images": 1000}]
    assert budget.labelled_predict_seconds(two, labelled) == pytest.approx(
        2 * budget.labelled_predict_seconds(one, labelled))
