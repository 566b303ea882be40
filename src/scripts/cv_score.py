"""Rule cv_score: out-of-fold competition score, raw and post-processed, overall and per fold."""

from saltnet.runtime.jobs import setup_logging
from saltnet.steps import cv_score_step

setup_logging(snakemake.log[0])
cv_score_step(snakemake.input.train, snakemake.input.folds, dict(zip(snakemake.params.folds, snakemake.input.oof)),
              snakemake.input.postprocess, snakemake.output[0])
