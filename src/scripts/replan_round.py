"""Rule replan_round: the last stage's epochs and time limit again for a later round of its folds."""

from saltnet.runtime.jobs import setup_logging
from saltnet.steps import replan_round_step

setup_logging(snakemake.log[0])
replan_round_step(snakemake.input.budget, snakemake.input.stage_budget, snakemake.wildcards.stage,
                  int(snakemake.wildcards.round), snakemake.params.rounds, snakemake.params.folds,
                  dict(snakemake.params.done), snakemake.output[0], labels=list(snakemake.input.labels))
