rule train_fold:
    input:
        train=rules.pack_data.output.train,
        folds=rules.split_folds.output[0],
        encoder_weights=get_encoder_weights,
    output:
        model="results/train/fold{fold}/model.pth",
        history="results/train/fold{fold}/history.parquet",
        run="results/train/fold{fold}/run.json",
    params:
        settings=stage_settings("train"),
        work_dir="results/checkpoints/train/fold{fold}",
        lock_dir=LOCK_DIR,
        gpu_slots=config.get("gpu_slots"),
        allocator=config["allocator"],
    threads: fold_threads
    resources:
        gpu=1,
        mem_mb=gpu_mem_mb,
        runtime=gpu_runtime(240),
    log:
        "logs/train_fold/fold{fold}.log",
    benchmark:
        "benchmarks/train_fold/fold{fold}.tsv"
    conda:
        "../../envs/train.yaml"
    script:
        "../../src/scripts/train_fold.py"


use rule train_fold as finetune_fold with:
    input:
        train=rules.pack_data.output.train,
        folds=rules.split_folds.output[0],
        init_weights=rules.train_fold.output.model,
    output:
        model="results/finetune/fold{fold}/model.pth",
        history="results/finetune/fold{fold}/history.parquet",
        run="results/finetune/fold{fold}/run.json",
    params:
        settings=stage_settings("finetune"),
        work_dir="results/checkpoints/finetune/fold{fold}",
        lock_dir=LOCK_DIR,
        gpu_slots=config.get("gpu_slots"),
        allocator=config["allocator"],
    log:
        "logs/finetune_fold/fold{fold}.log",
    benchmark:
        "benchmarks/finetune_fold/fold{fold}.tsv"
