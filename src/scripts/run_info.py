"""Rule run_info: the run's config, package versions and git commit, saved beside the results."""

from saltnet.runtime.atomic import write_json
from saltnet.runtime.jobs import provenance, setup_logging

setup_logging(snakemake.log[0])
write_json(snakemake.output[0], {"config": dict(snakemake.config), **provenance(snakemake.params.repo)})
