"""Rule analysis_tta: the out-of-fold images predicted again with each test-time view and both stages."""

from saltnet.runtime.jobs import set_threads, setup_logging
from saltnet.steps import tta_analysis_step

setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
p = snakemake.params
models = {fold: {"train": t, "finetune": f} for fold, t, f in zip(p.folds, snakemake.input.train_models,
                                                                   snakemake.input.finetune_models)}
tta_analysis_step(snakemake.input.train, snakemake.input.folds, dict(zip(p.folds, snakemake.input.oof)), models,
                  p.batch_size, p.lock_dir, snakemake.output[0], p.gpu_slots)
