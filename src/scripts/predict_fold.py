"""Rule predict_fold: flip-TTA probabilities of one fold's model on test and out-of-fold images."""

from saltnet.allocator import allocator_in_use, preload_allocator

# Before torch is imported: re-executes under jemalloc where it measurably helps (config allocator).
expected = snakemake.params.settings  # the config's finetune settings: the model file must match them
allocator = preload_allocator(snakemake.params.allocator, (expected["model"], expected["size"],
                                                          snakemake.params.predict["batch_size"]))

import logging

from saltnet.runtime import set_threads, setup_logging
from saltnet.settings import TrainSettings
from saltnet.steps import predict_step

setup_logging(snakemake.log[0])
logging.getLogger("saltnet").info("allocator: %s in use; chosen: %s", allocator_in_use(), allocator)
set_threads(snakemake.threads)
predict_step(
    weights=snakemake.input.model,
    expected=TrainSettings(**expected),
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
