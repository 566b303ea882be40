# What a run's out-of-fold predictions say beyond its score, as JSON beside its results (cheap: seconds,
# no model is run). A sweep's leaderboard (workflow/sweep.smk) collects them.
from saltnet.evaluation import outputs
from saltnet.evaluation.outputs import analysis_path


localrules:
    analysis_postprocess,
    analysis_losses,


# The post-processing chosen as rule postprocess chooses it, on the other folds' images (a one-fold run:
# the other half of its images), scored on each fold's: what of its gain is not chosen on the images scored.
rule analysis_postprocess:
    input:
        **OOF_INPUTS,
        postprocess=rules.postprocess.output[0],  # the search on all images, made once
    output:
        analysis_path("postprocess"),
    log:
        "logs/analysis/postprocess.log",
    conda:
        "../../envs/data.yaml"
    params:
        **POSTPROCESS_PARAMS,
    script:
        "../../src/scripts/analysis_postprocess.py"


# Points lost by salt coverage, on vertical bands, and empty against salt images by peak probability.
rule analysis_losses:
    input:
        **OOF_INPUTS,
        postprocess=rules.postprocess.output[0],
    output:
        analysis_path("losses"),
    log:
        "logs/analysis/losses.log",
    conda:
        "../../envs/data.yaml"
    params:
        folds=FOLDS,
    script:
        "../../src/scripts/analysis_losses.py"


ANALYSES = [analysis_path(name) for name in outputs.CHEAP_ANALYSES]  # in rule all
COSTLY_ANALYSES = [analysis_path(name) for name in outputs.COSTLY_ANALYSES]  # targets; the run page shows them


# Costly (the out-of-fold images predicted again), so targets of their own, not in `all`:
#   snakemake ... -- results/analysis/tta.json          (an experiment: analyses: [tta])
# Each test-time view (none, the flip, flip and shifts) of the finetune's models, the first stage's with
# the flip, and the two stages' mean.
rule analysis_tta:
    input:
        **OOF_INPUTS,
        train_models=expand(rules.train_fold.output.model, fold=FOLDS),
        finetune_models=expand(rules.finetune_fold.output.model, fold=FOLDS),
    output:
        analysis_path("tta"),
    log:
        "logs/analysis/tta.log",
    conda:
        "../../envs/train.yaml"
    threads: all_cores
    resources:
        **gpu_resources(60),
    params:
        folds=FOLDS,
        batch_size=config["predict"]["batch_size"],
        lock_dir=LOCK_DIR,
        gpu_slots=config["gpu_slots"],
    script:
        "../../src/scripts/analysis_tta.py"


# The finetune's final model against the mean of its last k snapshots' predictions and of their weights
# (k from 2 to config snapshots, at most 5); only where the run keeps snapshots (snapshots: 2 or more).
if config["snapshots"] >= 2:

    rule analysis_snapshots:
        input:
            **OOF_INPUTS,
            models=expand(rules.finetune_fold.output.model, fold=FOLDS),
        output:
            analysis_path("snapshots"),
        log:
            "logs/analysis/snapshots.log",
        conda:
            "../../envs/train.yaml"
        threads: all_cores
        resources:
            **gpu_resources(60),
        params:
            folds=FOLDS,
            ks=list(range(2, min(config["snapshots"], 5) + 1)),
            lock_dir=LOCK_DIR,
            gpu_slots=config["gpu_slots"],
        script:
            "../../src/scripts/analysis_snapshots.py"
