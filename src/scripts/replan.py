"""Rule replan: a later stage's epochs and time limit, from the earlier stages' real times and the clock."""

from saltnet.runtime.jobs import setup_logging
from saltnet.steps import replan_step

setup_logging(snakemake.log[0])
replan_step(snakemake.input.budget, snakemake.wildcards.stage, dict(snakemake.params.done), snakemake.output[0],
            labels=list(snakemake.input.labels))
