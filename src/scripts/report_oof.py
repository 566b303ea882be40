"""Rule report_oof: out-of-fold score per fold, score vs threshold, score by salt-coverage class (PNGs)."""

import logging

from saltnet.report import oof_figures
from saltnet.runtime.jobs import setup_logging

setup_logging(snakemake.log[0])
coverage = oof_figures(
    packed_train=snakemake.input.train,
    oof=dict(zip(snakemake.params.folds, snakemake.input.oof)),
    cv_score=snakemake.input.cv_score,
    postprocess=snakemake.input.postprocess,
    out_scores=snakemake.output.scores,
    out_threshold=snakemake.output.threshold,
    out_coverage=snakemake.output.coverage,
)
logging.getLogger("saltnet").info("score by coverage class, post-processed:\n%s", coverage.to_string(index=False))
