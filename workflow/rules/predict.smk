rule predict_fold:
    input:
        models=[f"results/{stage}/fold{{fold}}/model.pth" for stage in PREDICT_STAGES],  # probabilities averaged
        train=rules.pack_data.output.train,
        test=rules.pack_data.output.test,
        folds=rules.split_folds.output[0],
        after=predict_after,
    output:
        test="results/predict/fold{fold}/test.npz",
        oof="results/predict/fold{fold}/oof.npz",
    log:
        "logs/predict_fold/fold{fold}.log",
    benchmark:
        "benchmarks/predict_fold/fold{fold}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: fold_threads
    resources:
        **gpu_resources(60 * len(PREDICT_STAGES)),
    params:
        settings=[stage_settings(stage) for stage in PREDICT_STAGES],  # what each model file was trained with
        predict=PREDICT_VIEWS,
        bf16=config["bf16"],
        lock_dir=LOCK_DIR,
        gpu_slots=config["gpu_slots"],
    script:
        "../../src/scripts/predict_fold.py"


rule ensemble:
    input:
        expand(rules.predict_fold.output.test, fold=FOLDS),
    output:
        "results/ensemble/test.npz",
    log:
        "logs/ensemble/ensemble.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../../src/scripts/ensemble.py"


# The inputs of every rule that reads the run folds' out-of-fold predictions with their images and masks,
# each fold's ids checked against the fold table.
OOF_INPUTS = dict(
    train=rules.pack_data.output.train,
    folds=rules.split_folds.output[0],
    oof=expand(rules.predict_fold.output.oof, fold=FOLDS),
)
# How the post-processing is settled: rule postprocess here, rule analysis_postprocess on held-out folds.
POSTPROCESS_PARAMS = dict(
    folds=FOLDS,
    threshold=config["threshold"],
    min_area=config["min_area"],
    min_peak=config["min_peak"],
)


# Threshold, min_area (masks with fewer pixels are emptied) and min_peak (masks whose most confident
# pixel is below it are emptied): searched on the out-of-fold
# predictions of all folds where the config says auto, else kept as given; scored either way.
rule postprocess:
    input:
        **OOF_INPUTS,
    output:
        "results/postprocess.json",
    log:
        "logs/postprocess/postprocess.log",
    conda:
        "../../envs/data.yaml"
    params:
        **POSTPROCESS_PARAMS,
    script:
        "../../src/scripts/postprocess.py"


rule submission:
    input:
        ensemble=rules.ensemble.output[0],
        postprocess=rules.postprocess.output[0],
        data_dir=DATA_DIR,
    output:
        "results/submission.csv",
    log:
        "logs/submission/submission.log",
    conda:
        "../../envs/data.yaml"
    params:
        sample=os.path.join(DATA_DIR, "sample_submission.csv"),
    script:
        "../../src/scripts/submission.py"


rule cv_score:
    input:
        **OOF_INPUTS,
        postprocess=rules.postprocess.output[0],
    output:
        "results/cv_score.json",
    log:
        "logs/cv_score/cv_score.log",
    conda:
        "../../envs/data.yaml"
    params:
        folds=FOLDS,
    script:
        "../../src/scripts/cv_score.py"
