# What a run's out-of-fold predictions say beyond its score, as JSON beside its results (cheap: seconds,
# no model is run). A sweep's leaderboard (workflow/sweep.smk) collects them.


localrules:
    analysis_postprocess,
    analysis_losses,


# The post-processing chosen as rule postprocess chooses it, on the other folds' images (a one-fold run:
# the other half of its images), scored on each fold's: what of its gain is not chosen on the images scored.
rule analysis_postprocess:
    input:
        train=rules.pack_data.output.train,
        folds=rules.split_folds.output[0],
        oof=expand(rules.predict_fold.output.oof, fold=FOLDS),
    output:
        "results/analysis/postprocess.json",
    log:
        "logs/analysis/postprocess.log",
    conda:
        "../../envs/data.yaml"
    params:
        folds=FOLDS,
        threshold=config["threshold"],
        min_area=config["min_area"],
        min_peak=config["min_peak"],
    script:
        "../../src/scripts/analysis_postprocess.py"


# Points lost by salt coverage, on vertical bands, and empty against salt images by peak probability.
rule analysis_losses:
    input:
        train=rules.pack_data.output.train,
        folds=rules.split_folds.output[0],
        oof=expand(rules.predict_fold.output.oof, fold=FOLDS),
        postprocess=rules.postprocess.output[0],
    output:
        "results/analysis/losses.json",
    log:
        "logs/analysis/losses.log",
    conda:
        "../../envs/data.yaml"
    params:
        folds=FOLDS,
    script:
        "../../src/scripts/analysis_losses.py"


ANALYSES = ["results/analysis/postprocess.json", "results/analysis/losses.json"]
