"""Rule predict_fold: flip-TTA probabilities of one fold's model on test and out-of-fold images."""

from saltnet.allocator import preload_jemalloc

preload_jemalloc()  # before torch is imported: re-executes under jemalloc when installed

from saltnet.runtime import set_threads, setup_logging
from saltnet.steps import predict_step

setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
predict_step(
    model_name=snakemake.params.model,
    weights=snakemake.input.model,
    size=snakemake.params.size,
    packed_train=snakemake.input.train,
    packed_test=snakemake.input.test,
    folds=snakemake.input.folds,
    fold=int(snakemake.wildcards.fold),
    out_test=snakemake.output.test,
    out_oof=snakemake.output.oof,
    lock_dir=snakemake.params.lock_dir,
    gpu_slots=snakemake.params.gpu_slots,
    **snakemake.params.predict,
)
