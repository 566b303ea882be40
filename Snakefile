# TGS Salt Identification: folds -> 128 px training -> 224 px fine-tuning -> flip-TTA predictions
# -> fold ensemble -> submission.csv. See README.md.
from snakemake.utils import min_version

min_version("8.0")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/weights.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/settings.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        "results/submission.csv",
        "results/cv_score.json",
        "results/run_info.json",
        ANALYSES,  # held-out post-processing, points lost by coverage (JSON)
        REPORT_FIGURES,  # figures for `snakemake --report results/report.html`
