# What this run trains, as the rules see it: the resolved config (the schema's defaults, the config files,
# --config), each stage's settings exactly as rules train_fold and finetune_fold get them (predict_fold
# checks the model files against the finetune's), and the threads of each per-fold job under this --cores.
# With budget_minutes the epochs shown are the configured ones, before plan_budget scales them.
#   snakemake --cores 2 --configfile workflow/presets/cpu.yaml --config data_dir=/path/to/tgs -- resolved_config


localrules:
    resolved_config,


rule resolved_config:
    output:
        "results/resolved_config.yaml",
    log:
        "logs/resolved_config/resolved_config.log",
    conda:
        "../../envs/data.yaml"
    params:
        files=CONFIG_FILES,
        config=config,
        stages={
            "train": rules.train_fold.params.settings,
            "finetune": rules.finetune_fold.params.settings,
        },
        threads=fold_threads,  # what train_fold, finetune_fold and predict_fold declare
        cores=all_cores,
    script:
        "../../src/scripts/resolved_config.py"
