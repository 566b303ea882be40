"""Rule report_examples: worst and best out-of-fold images and a sample of test predictions (JPEG grids)."""

from saltnet.report import examples_figures
from saltnet.runtime.jobs import setup_logging

setup_logging(snakemake.log[0])
examples_figures(
    packed_train=snakemake.input.train,
    packed_test=snakemake.input.test,
    oof=dict(zip(snakemake.params.folds, snakemake.input.oof)),
    ensemble=snakemake.input.ensemble,
    postprocess=snakemake.input.postprocess,
    out_worst=snakemake.output.worst,
    out_best=snakemake.output.best,
    out_test=snakemake.output.test,
)
