"""Rule postprocess: threshold, min_area and min_peak searched ('auto') or kept (a number) on the OOF predictions."""

from saltnet.runtime.jobs import setup_logging
from saltnet.steps import postprocess_step

setup_logging(snakemake.log[0])
postprocess_step(snakemake.input.train, snakemake.input.folds, dict(zip(snakemake.params.folds, snakemake.input.oof)),
                 snakemake.params.threshold, snakemake.params.min_area, snakemake.params.min_peak,
                 snakemake.output[0])
