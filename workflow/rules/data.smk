# Only for data_dir: demo, so no rule ever has a user's data folder as output (Snakemake deletes the
# outputs of a rule it reruns, e.g. with --forceall).
if DEMO:

    localrules:
        make_demo_data,

    rule make_demo_data:
        output:
            directory(DEMO_DIR),
        log:
            "logs/make_demo_data/make_demo_data.log",
        conda:
            "../../envs/data.yaml"
        params:
            demo=config["demo"],
        script:
            "../../src/scripts/make_demo_data.py"


if KAGGLE:

    localrules:
        unpack_data,

    rule unpack_data:
        input:
            kaggle_sources(DATA_SOURCE),
        output:
            directory(UNPACKED_DIR),
        log:
            "logs/unpack_data/unpack_data.log",
        conda:
            "../../envs/data.yaml"
        params:
            source=DATA_SOURCE,
        script:
            "../../src/scripts/unpack_data.py"


rule pack_data:
    input:
        get_data_files,
    output:
        train="results/packed/train.npz",
        test="results/packed/test.npz",
    log:
        "logs/pack_data/pack_data.log",
    conda:
        "../../envs/data.yaml"
    params:
        data_dir=DATA_DIR,
        data_stamp=data_stamp,  # every file's path and content: a change packs again
        image_size=config["image_size"],
    script:
        "../../src/scripts/pack_data.py"


rule split_folds:
    input:
        train=rules.pack_data.output.train,
    output:
        "results/folds.parquet",
    log:
        "logs/split_folds/split_folds.log",
    conda:
        "../../envs/data.yaml"
    params:
        n_folds=config["folds"]["n"],
        seed=config["folds"]["seed"],
    script:
        "../../src/scripts/split_folds.py"


rule run_info:
    output:
        "results/run_info.json",
    log:
        "logs/run_info/run_info.log",
    conda:
        "../../envs/data.yaml"
    params:
        repo=workflow.basedir,
        config=config,  # a changed config remakes run_info.json (Snakemake reruns on changed params)
    script:
        "../../src/scripts/run_info.py"
