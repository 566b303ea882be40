"""Rule resolved_config: the run's resolved config, stage settings and threads per job, as YAML."""

from saltnet.runtime import setup_logging
from saltnet.settings import write_resolved_config

setup_logging(snakemake.log[0])
write_resolved_config(snakemake.output[0], files=snakemake.params.files, config=snakemake.params.config,
                      stages=snakemake.params.stages, threads=snakemake.params.threads, cores=snakemake.params.cores)
