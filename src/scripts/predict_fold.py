"""Rule predict_fold: flip-TTA probabilities of one fold's model (the mean of config predict.stages' models) on
test and out-of-fold images."""

from saltnet.config.settings import TrainSettings
from saltnet.runtime.jobs import set_threads, setup_logging
from saltnet.steps import predict_step

setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
predict_step(
    weights=list(snakemake.input.models),
    expected=[TrainSettings(**settings) for settings in snakemake.params.settings],  # each model file must match
    packed_train=snakemake.input.train,
    packed_test=snakemake.input.test,
    folds=snakemake.input.folds,
    fold=int(snakemake.wildcards.fold),
    out_test=snakemake.output.test,
    out_oof=snakemake.output.oof,
    lock_dir=snakemake.params.lock_dir,
    gpu_slots=snakemake.params.gpu_slots,
    bf16=snakemake.params.bf16,
    **snakemake.params.predict,
)
