rule train_fold:
    input:
        train=rules.pack_data.output.train,
        folds=rules.split_folds.output[0],
        encoder_weights=get_encoder_weights,
        budget=get_budget,
    output:
        model="results/train/fold{fold}/model.pth",
        history="results/train/fold{fold}/history.parquet",
        run="results/train/fold{fold}/run.json",
    log:
        "logs/train_fold/fold{fold}.log",
    benchmark:
        "benchmarks/train_fold/fold{fold}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: fold_threads
    resources:
        **gpu_resources(240),
    params:
        settings=stage_settings("train"),
        work_dir="results/checkpoints/train/fold{fold}",
        lock_dir=LOCK_DIR,
        gpu_slots=config["gpu_slots"],
    script:
        "../../src/scripts/train_fold.py"


use rule train_fold as finetune_fold with:
    input:
        train=rules.pack_data.output.train,
        folds=rules.split_folds.output[0],
        init_weights=rules.train_fold.output.model,
        budget=get_finetune_budget,
    output:
        model="results/finetune/fold{fold}/model.pth",
        history="results/finetune/fold{fold}/history.parquet",
        run="results/finetune/fold{fold}/run.json",
    log:
        "logs/finetune_fold/fold{fold}.log",
    benchmark:
        "benchmarks/finetune_fold/fold{fold}.tsv"
    params:
        settings=stage_settings("finetune"),
        work_dir="results/checkpoints/finetune/fold{fold}",
        lock_dir=LOCK_DIR,
        gpu_slots=config["gpu_slots"],


rule plan_budget:
    input:
        test=rules.pack_data.output.test,
        folds=rules.split_folds.output[0],
    output:
        "results/budget.json",
    log:
        "logs/plan_budget/plan_budget.log",
    conda:
        "../../envs/train.yaml"
    threads: all_cores  # nothing else runs while it times: the fold jobs' concurrency is simulated
    resources:
        **SLURM_RESOURCES,
    params:
        budget_minutes=config["budget_minutes"],
        model=config["model"],
        stages=budget_stages(),
        valid_fraction=config["valid_fraction"],
        predict_tta=config["predict"]["tta"],
        predict_shifts=config["predict"]["shifts"],
        predict_batch_size=config["predict"]["batch_size"],
        image_size=rules.pack_data.params.image_size,  # the native side the packed images have
        fold_threads=fold_threads,  # a function: --cores is read when the job runs, not when the rules are
        bf16=config["bf16"],
    script:
        "../../src/scripts/plan_budget.py"


rule replan_finetune:
    input:
        budget="results/budget.json",
        train_runs=expand("results/train/fold{fold}/run.json", fold=FOLDS),
    output:
        "results/budget_finetune.json",
    log:
        "logs/replan_finetune/replan_finetune.log",
    conda:
        "../../envs/train.yaml"
    threads: all_cores  # it times the steps again, as plan_budget does: nothing else may run meanwhile
    resources:
        **SLURM_RESOURCES,
    script:
        "../../src/scripts/replan_finetune.py"
