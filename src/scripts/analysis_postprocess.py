"""Rule analysis_postprocess: the post-processing chosen on other folds' images, scored on each fold's."""

from saltnet.runtime.jobs import setup_logging
from saltnet.steps import heldout_postprocess_step

setup_logging(snakemake.log[0])
heldout_postprocess_step(snakemake.input.train, snakemake.input.folds,
                         dict(zip(snakemake.params.folds, snakemake.input.oof)), snakemake.input.postprocess,
                         snakemake.params.threshold,
                         snakemake.params.min_area, snakemake.params.min_peak, snakemake.output[0])
