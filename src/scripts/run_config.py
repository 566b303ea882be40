"""Rule run_config: a sweep run's whole config, written as its folder's config.yaml."""

from saltnet.experiments.runner import write_run_config
from saltnet.runtime.jobs import setup_logging

setup_logging(snakemake.log[0])
write_run_config(snakemake.output[0], snakemake.params.config, snakemake.params.experiment)
