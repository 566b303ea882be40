"""Rule analysis_losses: where the post-processed out-of-fold score loses its points."""

from saltnet.runtime.jobs import setup_logging
from saltnet.steps import coverage_losses_step

setup_logging(snakemake.log[0])
coverage_losses_step(snakemake.input.train, snakemake.input.folds,
                     dict(zip(snakemake.params.folds, snakemake.input.oof)), snakemake.input.postprocess,
                     snakemake.output[0])
