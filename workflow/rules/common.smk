import os
from pathlib import Path

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

FOLDS = list(range(config["folds"]["n"]))
DATA_DIR = config["data_dir"]
DEMO_DIR = "results/demo_data"
LOCK_DIR = ".snakemake/gpu-locks"


wildcard_constraints:
    fold=r"\d+",


def stage_settings(stage):
    """TrainSettings keyword arguments for stage 'train' or 'finetune'."""
    keys = ("model", "encoder_weights", "loss", "seed", "bf16")
    return {**{k: config[k] for k in keys}, **config[stage]}


def gpu_mem_mb(wildcards, attempt):
    return 8000 * attempt


def gpu_runtime(base_minutes):
    """Runtime in minutes that doubles with each retry, so a resubmitted fold gets longer."""
    return lambda wildcards, attempt: base_minutes * 2 ** (attempt - 1)


def use_jemalloc(path="/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"):
    """Preload jemalloc into the jobs when it is installed (Debian libjemalloc2).

    glibc malloc spent up to 40% of CPU training time in page faults on the large activations here;
    jemalloc made the U-Nets train 1.8-2x faster. Jobs inherit the variable; SALTNET_JEMALLOC=0
    turns it off.
    """
    if os.environ.get("SALTNET_JEMALLOC", "1") != "0" and Path(path).exists():
        preload = os.environ.get("LD_PRELOAD", "")
        if path not in preload:
            os.environ["LD_PRELOAD"] = f"{path} {preload}".strip()


use_jemalloc()
