"""Rules report_run(_partial): the run page (HTML) and the time and memory of each job (PNG)."""

import logging

from saltnet.report import run_report
from saltnet.runtime.jobs import setup_logging

setup_logging(snakemake.log[0])
missing = run_report(
    run_info=snakemake.input.run_info,
    runs=snakemake.params.runs,
    benchmarks=list(snakemake.input.benchmarks),
    expected=snakemake.params.expected,
    out_html=snakemake.output.page,
    out_times=snakemake.output.times,
    bench=(list(snakemake.input.bench) or [None])[0],  # results/bench.json if `make bench` made one
    budget=(list(snakemake.input.budget) or [None])[0],  # results/budget.json with config budget_minutes
    replans=list(snakemake.input.replan),  # results/budget_{stage}.json of rule replan, likewise
    analyses=list(snakemake.input.analyses),
)
logging.getLogger("saltnet").info("run page written; missing: %s", "; ".join(missing) or "nothing")
