"""Rule submission: threshold the ensemble, empty small masks (results/postprocess.json), RLE, validate."""

from saltnet.runtime.jobs import setup_logging
from saltnet.steps import submission_step

setup_logging(snakemake.log[0])
submission_step(snakemake.input.ensemble, snakemake.params.sample, snakemake.input.postprocess,
                snakemake.output[0])
