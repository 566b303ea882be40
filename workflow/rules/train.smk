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
    # a fold that trains goes before any fold's prediction: the time budget plans the folds in rounds and
    # all predictions after them (saltnet.performance.budget)
    priority: 10
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
        budget=stage_budget("finetune"),
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
        predict_models=len(PREDICT_STAGES),  # each fold's models that predict its images and the test set
        image_size=rules.pack_data.params.image_size,  # the native side the packed images have
        fold_threads=fold_threads,  # a function: --cores is read when the job runs, not when the rules are
        bf16=config["bf16"],
        run_folds=FOLDS,  # a proxy's folds.run: only those train in the budget
    script:
        "../../src/scripts/plan_budget.py"


# Once a stage has ended in every fold: the next stage's epochs from its real times and the clock, and
# each of its folds' time limit (saltnet.performance.budget.replan_stage).
rule replan:
    input:
        budget="results/budget.json",
        done=lambda wildcards: sum(earlier_runs(wildcards.stage).values(), []),
        labels=lambda wildcards: (
            expand("results/pseudo/fold{fold}/labels.json", fold=FOLDS) if wildcards.stage == "pseudo" else []
        ),
    output:
        "results/budget_{stage}.json",
    log:
        "logs/replan/{stage}.log",
    wildcard_constraints:
        stage="finetune|pseudo",
    conda:
        "../../envs/train.yaml"
    resources:
        **SLURM_RESOURCES,
    params:
        done=lambda wildcards: earlier_runs(wildcards.stage),
    script:
        "../../src/scripts/replan.py"


# Where the folds train in rounds: the last stage's epochs again before each later round, from its own folds'
# real epochs in the rounds before and the clock (saltnet.performance.budget.replan_round).
rule replan_round:
    input:
        budget="results/budget.json",
        stage_budget="results/budget_{stage}.json",
        done=lambda wildcards: sum(round_runs(wildcards.stage, int(wildcards.round)).values(), []),
        labels=lambda wildcards: (
            expand("results/pseudo/fold{fold}/labels.json", fold=round_folds(int(wildcards.round)))
            if wildcards.stage == "pseudo"
            else []
        ),
    output:
        "results/budget_{stage}_round{round}.json",
    log:
        "logs/replan/{stage}_round{round}.log",
    wildcard_constraints:
        stage="finetune|pseudo",
        round=r"[2-9]|[1-9]\d+",
    priority: 10  # the next round's folds wait for it
    conda:
        "../../envs/train.yaml"
    resources:
        **SLURM_RESOURCES,
    params:
        done=lambda wildcards: round_runs(wildcards.stage, int(wildcards.round)),
        folds=lambda wildcards: round_folds(int(wildcards.round)),
        rounds=FOLD_ROUNDS,
    script:
        "../../src/scripts/replan_round.py"


# The pseudo-label stage (config pseudo): fold k's finetune model labels the test images, and fold k trains
# on its own training images and the confident ones, from its finetune weights (saltnet.training.pseudo).
rule pseudo_labels:
    input:
        model=rules.finetune_fold.output.model,
        test=rules.pack_data.output.test,
    output:
        labels="results/pseudo/fold{fold}/labels.npz",
        summary="results/pseudo/fold{fold}/labels.json",
    log:
        "logs/pseudo_labels/fold{fold}.log",
    conda:
        "../../envs/train.yaml"
    threads: fold_threads
    resources:
        **gpu_resources(30),
    params:
        settings=stage_settings("finetune"),  # what the model file must have been trained with
        predict=PREDICT_VIEWS,
        rule=config["pseudo_labels"],
        bf16=config["bf16"],
        lock_dir=LOCK_DIR,
        gpu_slots=config["gpu_slots"],
    script:
        "../../src/scripts/pseudo_labels.py"


use rule train_fold as pseudo_fold with:
    input:
        train=rules.pack_data.output.train,
        folds=rules.split_folds.output[0],
        init_weights=rules.finetune_fold.output.model,
        pseudo_labels=rules.pseudo_labels.output.labels,
        test=rules.pack_data.output.test,
        budget=stage_budget("pseudo"),
    output:
        model="results/pseudo/fold{fold}/model.pth",
        history="results/pseudo/fold{fold}/history.parquet",
        run="results/pseudo/fold{fold}/run.json",
    log:
        "logs/pseudo_fold/fold{fold}.log",
    benchmark:
        "benchmarks/pseudo_fold/fold{fold}.tsv"
    params:
        settings=stage_settings("pseudo") if PSEUDO else {},
        work_dir="results/checkpoints/pseudo/fold{fold}",
        lock_dir=LOCK_DIR,
        gpu_slots=config["gpu_slots"],
