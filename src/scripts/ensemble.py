"""Rule ensemble: mean of the folds' test probabilities."""

from saltnet.runtime.jobs import setup_logging
from saltnet.steps import ensemble_step

setup_logging(snakemake.log[0])
ensemble_step(list(snakemake.input), snakemake.output[0])
