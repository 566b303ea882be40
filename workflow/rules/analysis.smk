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
COSTLY_ANALYSES = ["results/analysis/tta.json", "results/analysis/snapshots.json"]  # the run page shows them if made


# Costly (the out-of-fold images predicted again), so targets of their own, not in `all`:
#   snakemake ... -- results/analysis/tta.json          (an experiment: analyses: [tta])
# Each test-time view (none, the flip, flip and shifts) of the finetune's models, the first stage's with
# the flip, and the two stages' mean.
rule analysis_tta:
    input:
        train=rules.pack_data.output.train,
        folds=rules.split_folds.output[0],
        oof=expand(rules.predict_fold.output.oof, fold=FOLDS),
        train_models=expand(rules.train_fold.output.model, fold=FOLDS),
        finetune_models=expand(rules.finetune_fold.output.model, fold=FOLDS),
    output:
        "results/analysis/tta.json",
    log:
        "logs/analysis/tta.log",
    conda:
        "../../envs/train.yaml"
    threads: all_cores
    resources:
        **SLURM_RESOURCES,
        gpu=1,
        mem_mb=gpu_mem_mb,
        runtime=gpu_runtime(60),
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
            train=rules.pack_data.output.train,
            folds=rules.split_folds.output[0],
            oof=expand(rules.predict_fold.output.oof, fold=FOLDS),
            models=expand(rules.finetune_fold.output.model, fold=FOLDS),
        output:
            "results/analysis/snapshots.json",
        log:
            "logs/analysis/snapshots.log",
        conda:
            "../../envs/train.yaml"
        threads: all_cores
        resources:
            **SLURM_RESOURCES,
            gpu=1,
            mem_mb=gpu_mem_mb,
            runtime=gpu_runtime(60),
        params:
            folds=FOLDS,
            ks=list(range(2, min(config["snapshots"], 5) + 1)),
            lock_dir=LOCK_DIR,
            gpu_slots=config["gpu_slots"],
        script:
            "../../src/scripts/analysis_snapshots.py"
