# Input functions and file lists of the report rules (workflow/rules/report.smk); no rules here.


STAGE_RULES = {stage: getattr(rules, f"{stage}_fold") for stage in STAGES}
REPORT_STAGES = list(STAGE_RULES)


def stage_files(key, folds=FOLDS):
    """{stage: {fold: path}} of output `key` ('history', 'run') of the training rules."""
    return {
        stage: {fold: str(expand(getattr(step.output, key), fold=fold)[0]) for fold in folds}
        for stage, step in STAGE_RULES.items()
    }


def flat(by_stage):
    """The paths of stage_files(...) as one list."""
    return [path for by_fold in by_stage.values() for path in by_fold.values()]


def existing(paths):
    """The paths that exist now: inputs of the partial report, which draws only what a run left."""
    return [path for path in paths if os.path.exists(path)]


def expected_outputs():
    """{what: path} of every output the run should end with; the run page lists the missing ones."""
    histories = stage_files("history")
    expected = {}
    for fold in FOLDS:
        for stage in REPORT_STAGES:
            expected[f"fold {fold} {stage}"] = histories[stage][fold]
        expected[f"fold {fold} predictions"] = str(expand(rules.predict_fold.output.oof, fold=fold)[0])
    for step in (rules.ensemble, rules.postprocess, rules.cv_score, rules.submission):
        path = str(step.output[0])  # a plain string: params are pickled for the job's script
        expected[path.removeprefix("results/")] = path
    return expected


def job_benchmarks():
    """The benchmark files of the GPU rules (per-job time and memory), so the run page comes after them."""
    return [
        f"benchmarks/{rule}/fold{fold}.tsv"
        for rule in [f"{stage}_fold" for stage in STAGES] + ["predict_fold"]
        for fold in FOLDS
    ]


def bench_table(wildcards):
    """results/bench.json where `make bench` made one (it is not made by this workflow)."""
    return existing(["results/bench.json"])


TRAINING_FIGURES = expand("results/report/training/{stage}_fold{fold}.png", stage=REPORT_STAGES, fold=FOLDS)
OOF_FIGURES = expand("results/report/oof/{name}.png", name=["scores", "threshold", "coverage"])
EXAMPLE_FIGURES = expand("results/report/examples/{name}.jpg", name=["oof_worst", "oof_best", "test_sample"])
RUN_PAGE = ["results/report/run/run.html", "results/report/run/job_times.png"]
REPORT_FIGURES = [*TRAINING_FIGURES, "results/report/training/overview.png", *OOF_FIGURES, *EXAMPLE_FIGURES, *RUN_PAGE]


def partial_report_inputs(wildcards):
    """What a run that stopped part-way can show: the figures of every fold stage that finished, the
    out-of-fold figures and examples if the run got that far, the overview and run page of what exists."""
    histories, runs = stage_files("history"), stage_files("run")
    done = [
        (stage, fold)
        for stage in REPORT_STAGES
        for fold in FOLDS
        if os.path.exists(histories[stage][fold]) and os.path.exists(runs[stage][fold])
    ]
    figures = [f"results/report/training/{stage}_fold{fold}.png" for stage, fold in done]
    if all(os.path.exists(path) for path in rules.report_oof.input):
        figures += OOF_FIGURES
    if all(os.path.exists(path) for path in rules.report_examples.input):
        figures += EXAMPLE_FIGURES
    return figures + rules.report_overview_partial.output + rules.report_run_partial.output
