"""Rules train_fold, finetune_fold and pseudo_fold: train one fold at one resolution (resumable)."""

from saltnet.runtime.jobs import set_threads, setup_logging
from saltnet.steps import planned_deadline, planned_epochs, planned_time_limit, train_step
from saltnet.training.fold import TrainSettings

setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
stage_name = snakemake.rule.removesuffix("_fold")
stage = dict(snakemake.params.settings)
time_limit, deadline = None, None
if snakemake.input.budget:  # config budget_minutes: the epochs plan_budget (or rule replan) fitted to it
    stage["epochs"] = planned_epochs(snakemake.input.budget[0], stage_name)
    time_limit = planned_time_limit(snakemake.input.budget[0])
    deadline = planned_deadline(snakemake.input.budget[0])
train_step(
    packed_train=snakemake.input.train,
    folds=snakemake.input.folds,
    fold=int(snakemake.wildcards.fold),
    settings=TrainSettings(**stage),
    stage=stage_name,
    init_weights=snakemake.input.get("init_weights"),
    pseudo_labels=snakemake.input.get("pseudo_labels"),
    packed_test=snakemake.input.get("test"),
    time_limit_s=time_limit,
    deadline=deadline,
    out_model=snakemake.output.model,
    out_history=snakemake.output.history,
    out_run=snakemake.output.run,
    work_dir=snakemake.params.work_dir,
    lock_dir=snakemake.params.lock_dir,
    gpu_slots=snakemake.params.gpu_slots,
)
