"""Rule submission: threshold the ensemble, run-length encode, validate, write submission.csv."""

from saltnet.runtime import setup_logging
from saltnet.steps import submission_step

setup_logging(snakemake.log[0])
submission_step(snakemake.input.ensemble, snakemake.params.sample, snakemake.params.threshold, snakemake.output[0])
