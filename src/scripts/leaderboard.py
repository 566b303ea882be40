"""Rule leaderboard: the sweep's runs as one table, each variant's gain over the baseline, the page."""

from saltnet.experiments.leaderboard import write_leaderboard
from saltnet.runtime.jobs import setup_logging

setup_logging(snakemake.log[0])
p, out = snakemake.params, snakemake.output
write_leaderboard(p.runs, p.baseline, p.experiment, p.description, p.command, out.table, out.gains, out.page,
                  out.figure, out.losses)
