"""Rule replan_finetune: the finetune epochs again, from what the first stage really took."""

from saltnet.runtime.jobs import setup_logging
from saltnet.steps import replan_step

setup_logging(snakemake.log[0])
replan_step(snakemake.input.budget, list(snakemake.input.train_runs), snakemake.output[0])
