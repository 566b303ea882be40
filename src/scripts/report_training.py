"""Rule report_training: training curves of one fold and stage (PNG for the report)."""

from saltnet.report import training_figure
from saltnet.runtime.jobs import setup_logging

setup_logging(snakemake.log[0])
training_figure(snakemake.input.history, snakemake.input.run, int(snakemake.wildcards.fold),
                snakemake.wildcards.stage, snakemake.output[0])
