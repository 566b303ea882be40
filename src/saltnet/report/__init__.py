"""Figures and pages for `snakemake --report`, drawn from a run's outputs (so remade without retraining).

Never imports torch or snakemake. training: curves per fold and stage and an overview of every fold;
oof: the score per fold before and after post-processing, score vs threshold, score by salt-coverage
class; examples: the worst and best out-of-fold images and a sample of test predictions, overlaid;
run_page: config, versions, devices, per-job time and memory, what is missing.
"""

from saltnet.report.examples import examples_figures
from saltnet.report.oof_figures import coverage_class, oof_figures, scores_by_coverage
from saltnet.report.run_page import run_report
from saltnet.report.training import overview_figure, training_figure

__all__ = ["training_figure", "overview_figure", "oof_figures", "coverage_class", "scores_by_coverage",
           "examples_figures", "run_report"]
