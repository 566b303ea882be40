"""Rule run_pipeline: the pipeline's snakemake in a sweep run's folder, timed; its record as JSON."""

import sys
from pathlib import Path

from saltnet.experiments.runner import run_pipeline
from saltnet.runtime.jobs import setup_logging

setup_logging(snakemake.log[0])
run_pipeline(Path(snakemake.input.config).parent, snakemake.params.snakefile, snakemake.params.targets,
             snakemake.params.cores, snakemake.params.run_args, snakemake.output[0], snakemake.log[0],
             python=sys.executable)
