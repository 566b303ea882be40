"""Rules train_fold and finetune_fold: train one fold at one resolution (resumable)."""

from saltnet.runtime.jobs import set_threads, setup_logging
from saltnet.steps import planned_epochs, train_step
from saltnet.training.fold import TrainSettings

setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
stage = dict(snakemake.params.settings)
if snakemake.input.budget:  # config budget_minutes: the epochs plan_budget (or replan_finetune) fitted to it
    stage["epochs"] = planned_epochs(snakemake.input.budget[0], snakemake.rule.removesuffix("_fold"))
train_step(
    packed_train=snakemake.input.train,
    folds=snakemake.input.folds,
    fold=int(snakemake.wildcards.fold),
    settings=TrainSettings(**stage),
    stage=snakemake.rule.removesuffix("_fold"),
    init_weights=snakemake.input.get("init_weights"),
    out_model=snakemake.output.model,
    out_history=snakemake.output.history,
    out_run=snakemake.output.run,
    work_dir=snakemake.params.work_dir,
    lock_dir=snakemake.params.lock_dir,
    gpu_slots=snakemake.params.gpu_slots,
)
