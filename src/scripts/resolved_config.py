"""Rule resolved_config: the run's resolved config, stage settings and threads per job, as YAML."""

from saltnet.config.settings import write_resolved_config
from saltnet.runtime.jobs import setup_logging

setup_logging(snakemake.log[0])
write_resolved_config(snakemake.output[0], files=snakemake.params.files, config=snakemake.params.config,
                      stages=snakemake.params.stages, threads=snakemake.params.threads, cores=snakemake.params.cores)
