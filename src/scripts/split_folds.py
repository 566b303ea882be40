"""Rule split_folds: one fold table, stratified by salt coverage, seeded."""

from saltnet.runtime.jobs import setup_logging
from saltnet.steps import folds_step

setup_logging(snakemake.log[0])
folds_step(snakemake.input.train, snakemake.params.n_folds, snakemake.params.seed, snakemake.output[0])
