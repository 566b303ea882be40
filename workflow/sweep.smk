# A sweep: every variant of an experiment file at every seed, each the real pipeline (../Snakefile) in
# its own run folder, then the leaderboard of the runs. README "Experiments"; experiments/README.md.
#   snakemake -s workflow/sweep.smk --cores 2 --config experiment=experiments/aux_weight.yaml
# A finished run is never run again: its outputs exist, and each run's snakemake reruns only what is
# missing (--rerun-triggers mtime: an edit of the code does not retrain a finished run).
import re
from pathlib import Path

from snakemake.utils import min_version, validate

from saltnet.config.resolve import ConfigError, stop
from saltnet.experiments.runner import check_run_folders
from saltnet.runtime.orphans import claim_workdir
from saltnet.experiments.spec import load_experiment

min_version("8.0")


claim_workdir()  # a sweep killed here left its locks: the same command just runs again
validate(config, "schemas/sweep.schema.yaml")
try:
    EXPERIMENT = load_experiment(config["experiment"], config["data_dir"], config["runs_dir"])
    check_run_folders(EXPERIMENT)
except ConfigError as err:
    stop(err)
EXP_DIR = f"{config['runs_dir']}/{EXPERIMENT.name}"
RUNS = {run.folder.removeprefix(EXP_DIR + "/"): run for run in EXPERIMENT.runs}
PIPELINE = str(Path(workflow.basedir).parent / "Snakefile")
# What each run must end with: its scores, provenance and analyses (the pipeline's default target adds
# the submission and the report figures, which a proxy does not need).
RUN_OUTPUTS = EXPERIMENT.run_outputs()


wildcard_constraints:
    run="|".join(map(re.escape, sorted(RUNS, key=len, reverse=True))),


localrules:
    run_config,
    run_pipeline,
    leaderboard,


rule leaderboard:
    default_target: True
    input:
        runs=expand(f"{EXP_DIR}/{{run}}/sweep_run.json", run=RUNS),
    output:
        table=f"{EXP_DIR}/leaderboard.csv",
        gains=f"{EXP_DIR}/gains.csv",
        page=f"{EXP_DIR}/leaderboard.html",
        figure=f"{EXP_DIR}/leaderboard.png",
        losses=f"{EXP_DIR}/losses.csv",
    log:
        f"{EXP_DIR}/logs/leaderboard.log",
    conda:
        "../envs/data.yaml"
    params:
        experiment=EXPERIMENT.name,
        description=EXPERIMENT.description,
        baseline=EXPERIMENT.baseline,
        runs=[{"variant": r.variant, "seed": r.seed, "folder": r.folder} for r in EXPERIMENT.runs],
        command=f"snakemake -s workflow/sweep.smk --config experiment={config['experiment']}",
    script:
        "../src/scripts/leaderboard.py"


# The run's whole config (base preset, proxy, variant, seed): the run folder is an ordinary one, and
# `snakemake --directory <folder> --configfile <folder>/config.yaml` reruns it by hand.
rule run_config:
    output:
        f"{EXP_DIR}/{{run}}/config.yaml",
    log:
        f"{EXP_DIR}/logs/run_config/{{run}}.log",
    conda:
        "../envs/data.yaml"
    params:
        config=lambda wildcards: RUNS[wildcards.run].config,
        experiment=str(EXPERIMENT.path),
    script:
        "../src/scripts/run_config.py"


rule run_pipeline:
    input:
        config=rules.run_config.output[0],
    output:
        f"{EXP_DIR}/{{run}}/sweep_run.json",  # the run's other outputs are the inner snakemake's own
    log:
        f"{EXP_DIR}/logs/run_pipeline/{{run}}.log",
    conda:
        "../envs/data.yaml"
    threads: max(1, workflow.cores // config["parallel_runs"])  # --cores is shared by the runs at once
    params:
        snakefile=PIPELINE,
        targets=RUN_OUTPUTS,  # a new analysis in the experiment file makes each finished run add it
        cores=workflow.cores,  # each run's --cores: the most threads one of its jobs may take
        run_args=config["run_args"],
    script:
        "../src/scripts/run_pipeline.py"
