"""Rule plan_budget: time this machine's steps and plan the epochs that fit config budget_minutes."""

from saltnet.runtime.jobs import setup_logging
from saltnet.steps import budget_step

setup_logging(snakemake.log[0])
budget_step(
    packed_test=snakemake.input.test,
    folds=snakemake.input.folds,
    budget_minutes=snakemake.params.budget_minutes,
    model=snakemake.params.model,
    stages=snakemake.params.stages,
    valid_fraction=snakemake.params.valid_fraction,
    predict_tta=snakemake.params.predict_tta,
    predict_shifts=snakemake.params.predict_shifts,
    predict_batch_size=snakemake.params.predict_batch_size,
    predict_models=snakemake.params.predict_models,
    native=snakemake.params.image_size,
    cores=snakemake.threads,
    fold_threads=snakemake.params.fold_threads,
    bf16=snakemake.params.bf16,
    run_folds=snakemake.params.run_folds,
    out=snakemake.output[0],
)
