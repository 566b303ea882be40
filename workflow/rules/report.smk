# Figures and pages for `snakemake --report results/report.html`, drawn from the run's outputs, so they can
# be remade without retraining (`--forcerun` a report_* rule, or delete results/report/). Captions are in
# workflow/report/. Each fold's training figures depend on that fold only; the overview, the out-of-fold
# figures and the run page follow the whole run. After a run where folds failed (--keep-going), target
# report_partial draws what exists instead and names what is missing (see README, "The report").


report: "../report/workflow.rst"


include: "report_inputs.smk"


# Cheap figures from files already made: run where snakemake runs, not as cluster jobs.
localrules:
    report_training,
    report_overview,
    report_overview_partial,
    report_oof,
    report_examples,
    report_run,
    report_run_partial,
    report_partial,


rule report_training:
    input:
        history="results/{stage}/fold{fold}/history.parquet",
        run="results/{stage}/fold{fold}/run.json",
    output:
        report(
            "results/report/training/{stage}_fold{fold}.png",
            caption="../report/training.rst",
            category="Training",
            subcategory="Per fold and stage",
            labels={"fold": "{fold}", "stage": "{stage}"},
        ),
    log:
        "logs/report_training/{stage}_fold{fold}.log",
    wildcard_constraints:
        stage="train|finetune|pseudo",
    conda:
        "../../envs/data.yaml"
    script:
        "../../src/scripts/report_training.py"


rule report_overview:
    input:
        flat(stage_files("history")),
    output:
        report(
            "results/report/training/overview.png",
            caption="../report/overview.rst",
            category="Training",
            subcategory="All folds",
            labels={"figure": "every fold"},
        ),
    log:
        "logs/report_overview/report_overview.log",
    conda:
        "../../envs/data.yaml"
    params:
        histories=stage_files("history"),
    script:
        "../../src/scripts/report_overview.py"


use rule report_overview as report_overview_partial with:
    input:
        lambda wildcards: existing(flat(stage_files("history"))),
    output:
        report(
            "results/report/partial/overview.png",
            caption="../report/overview.rst",
            category="Training",
            subcategory="All folds",
            labels={"figure": "every fold that finished"},
        ),
    log:
        "logs/report_overview/report_overview_partial.log",


rule report_oof:
    input:
        train=rules.pack_data.output.train,
        oof=expand(rules.predict_fold.output.oof, fold=FOLDS),
        cv_score=rules.cv_score.output[0],
        postprocess=rules.postprocess.output[0],
    output:
        scores=report(
            OOF_FIGURES[0],
            caption="../report/oof_scores.rst",
            category="Out-of-fold",
            labels={"figure": "score per fold"},
        ),
        threshold=report(
            OOF_FIGURES[1],
            caption="../report/oof_threshold.rst",
            category="Out-of-fold",
            labels={"figure": "score vs threshold"},
        ),
        coverage=report(
            OOF_FIGURES[2],
            caption="../report/oof_coverage.rst",
            category="Out-of-fold",
            labels={"figure": "score by coverage class"},
        ),
    log:
        "logs/report_oof/report_oof.log",
    conda:
        "../../envs/data.yaml"
    params:
        folds=FOLDS,
    script:
        "../../src/scripts/report_oof.py"


rule report_examples:
    input:
        train=rules.pack_data.output.train,
        test=rules.pack_data.output.test,
        oof=expand(rules.predict_fold.output.oof, fold=FOLDS),
        ensemble=rules.ensemble.output[0],
        postprocess=rules.postprocess.output[0],
    output:
        worst=report(
            EXAMPLE_FIGURES[0],
            caption="../report/examples_worst.rst",
            category="Examples",
            labels={"figure": "worst out-of-fold"},
        ),
        best=report(
            EXAMPLE_FIGURES[1],
            caption="../report/examples_best.rst",
            category="Examples",
            labels={"figure": "best out-of-fold"},
        ),
        test=report(
            EXAMPLE_FIGURES[2],
            caption="../report/examples_test.rst",
            category="Examples",
            labels={"figure": "test predictions"},
        ),
    log:
        "logs/report_examples/report_examples.log",
    conda:
        "../../envs/data.yaml"
    params:
        folds=FOLDS,
    script:
        "../../src/scripts/report_examples.py"


rule report_run:
    input:
        run_info=rules.run_info.output[0],
        runs=flat(stage_files("run")),
        benchmarks=job_benchmarks(),
        outputs=list(expected_outputs().values()),
        bench=bench_table,
        budget=get_budget,
        replan=get_replans,
        analyses=lambda wildcards: ANALYSES + existing(COSTLY_ANALYSES),
    output:
        page=report(
            RUN_PAGE[0],
            caption="../report/run_page.rst",
            category="The run",
            labels={"figure": "config, versions, devices, jobs"},
        ),
        times=report(
            RUN_PAGE[1],
            caption="../report/job_times.rst",
            category="The run",
            labels={"figure": "time and memory per job"},
        ),
    log:
        "logs/report_run/report_run.log",
    conda:
        "../../envs/data.yaml"
    params:
        runs=stage_files("run"),
        expected=expected_outputs(),
    script:
        "../../src/scripts/report_run.py"


use rule report_run as report_run_partial with:
    input:
        run_info=rules.run_info.output[0],
        runs=lambda wildcards: existing(flat(stage_files("run"))),
        benchmarks=lambda wildcards: existing(job_benchmarks()),
        outputs=lambda wildcards: existing(expected_outputs().values()),
        bench=bench_table,
        budget=lambda wildcards: existing(get_budget(wildcards)),
        replan=lambda wildcards: existing(get_replans(wildcards)),
        analyses=lambda wildcards: existing(ANALYSES + COSTLY_ANALYSES),
    output:
        page=report(
            "results/report/partial/run.html",
            caption="../report/run_page.rst",
            category="The run",
            labels={"figure": "config, versions, devices, jobs"},
        ),
        times=report(
            "results/report/partial/job_times.png",
            caption="../report/job_times.rst",
            category="The run",
            labels={"figure": "time and memory per job"},
        ),
    log:
        "logs/report_run/report_run_partial.log",


# After a run where some folds failed: `snakemake --cores 1 report_partial`, then
# `snakemake --report results/report.html report_partial`. A target only: it runs nothing, its env is
# named because every rule here names one (tests/test_envs.py).
rule report_partial:
    input:
        partial_report_inputs,
    conda:
        "../../envs/data.yaml"
