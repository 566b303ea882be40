import os
import sys
import tempfile
from pathlib import Path

from saltnet.config.resolve import (
    ConfigError,
    config_files,
    predict_stages,
    resolve_config,
    run_folds,
    stop,
    trained_stages,
)
from saltnet.data.kaggle import is_kaggle_download, kaggle_sources
from saltnet.data.pack import TABLES
from saltnet.performance.budget import fold_rounds
from saltnet.runtime.orphans import claim_workdir

# The run's config, the same from any working directory: the schema's defaults, then the config files
# named with --configfile (with none: ./config.yaml if there is one, else the demo preset), then --config.
# Snakemake's own merge is replaced, so that no file is ever merged under another.
if "--target-jobs" not in sys.argv:  # the snakemake that runs the workflow, not one a cluster job starts
    claim_workdir()  # a snakemake killed here left its locks: the same command just runs again

CONFIG_FILES = [str(path) for path in config_files(workflow.config_settings.configfiles)]
try:
    _resolved = resolve_config(CONFIG_FILES, workflow.config_settings.config)
except ConfigError as err:
    stop(err)
config.clear()
config.update(_resolved)
if "data_dir" not in config:  # the one key without a default: the presets for real data leave it to the user
    stop(
        "config key data_dir: not set; give the folder of the competition download "
        "(--config data_dir=/path/to/tgs) or data_dir=demo for the synthetic demo data"
    )

FOLDS = run_folds(config["folds"])  # all folds.n, or the folds.run of a proxy
DEMO = config["data_dir"] == "demo"  # the built-in synthetic data, made by rule make_demo_data
DEMO_DIR = "results/demo_data"
DATA_SOURCE = os.path.expanduser(config["data_dir"])  # ~ is the shell's, so expand it here
# A download as the Kaggle CLI delivers it (the zip, or its folder with train.zip and test.zip): rule
# unpack_data unpacks it into results/data, never inside the user's folder.
KAGGLE = not DEMO and is_kaggle_download(DATA_SOURCE)
UNPACKED_DIR = "results/data"
DATA_DIR = DEMO_DIR if DEMO else UNPACKED_DIR if KAGGLE else DATA_SOURCE
# One lock folder per machine and user, not per working directory: two experiments run from different
# directories on one GPU box must not both take GPU 0.
LOCK_DIR = os.path.join(tempfile.gettempdir(), f"saltnet-gpu-locks-{os.getuid()}")


wildcard_constraints:
    fold=r"\d+",
    encoder=r"[A-Za-z0-9_]+",


# Rules that are cheap or need internet run where snakemake runs (the login node), not as cluster jobs.
localrules:
    pack_data,
    split_folds,
    run_info,
    ensemble,
    postprocess,
    submission,
    cv_score,
    fetch_encoder_weights,


def encoder_weights_path():
    """config encoder_weights as training reads it: 'none', a file, or for 'imagenet' the file that rule
    fetch_encoder_weights downloads once on the login node (cluster jobs may have no internet)."""
    if config["encoder_weights"] != "imagenet":
        return config["encoder_weights"]
    from saltnet.models.registry import get_model_spec  # imports torch, so only when needed

    encoder = get_model_spec(config["model"]).encoder
    if encoder is None:
        raise ValueError(
            f"config key encoder_weights: model {config['model']!r} has no ImageNet encoder "
            "(it trains from random init); set encoder_weights: none"
        )
    return f"resources/weights/{encoder}.pth"


try:
    ENCODER_WEIGHTS = encoder_weights_path()
except ValueError as err:
    stop(err)


def get_data_files(wildcards):
    """Input of pack_data: the data folder's tables (its images are in data_stamp(): listing thousands of
    PNGs as inputs would flood the terminal with their names when the job fails)."""
    if DEMO:
        return [DEMO_DIR]
    if KAGGLE:
        return [UNPACKED_DIR]
    return [str(Path(DATA_DIR) / name) for name in TABLES if (Path(DATA_DIR) / name).is_file()]


def data_stamp(wildcards):
    """A digest of every file of a user's data folder (its path and its bytes): a param of pack_data, so that
    an edited, added or removed file (a mask, a new image) makes the next run pack again, and a file only
    touched or copied does not. Snakemake computes it on every run whose DAG holds pack_data (to compare
    params): 0.14 s for the 7,003 files of ../shared/data/tgs, warm (Intel(R) Xeon(R) Processor, 2 cores,
    avx512f); the full competition download has about 26,000."""
    import hashlib

    if DEMO or KAGGLE or not os.path.isdir(DATA_DIR):
        return None
    digest = hashlib.sha1()
    for path in sorted(p for p in Path(DATA_DIR).rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(f"{path.relative_to(DATA_DIR)}\0".encode())
        digest.update(hashlib.sha1(path.read_bytes()).digest())
    return digest.hexdigest()


def get_encoder_weights(wildcards):
    """Input of train_fold: the encoder weights file, if any."""
    return [] if ENCODER_WEIGHTS == "none" else ENCODER_WEIGHTS


def stage_settings(stage):
    """TrainSettings keyword arguments for stage 'train' or 'finetune' (saltnet.config.settings, no torch import)."""
    from saltnet.config.settings import stage_settings as settings_of

    return settings_of(config, stage, encoder_weights=ENCODER_WEIGHTS)


BUDGETED = config["budget_minutes"] is not None
STAGES = trained_stages(config)  # the training stages, in order
PSEUDO = "pseudo" in STAGES  # the pseudo-label stage after the finetune
FINAL_STAGE = STAGES[-1]  # the last stage trained
PREDICT_STAGES = predict_stages(config)  # whose models predict (config predict.stages; [] is FINAL_STAGE's)
# how each model predicts (batch, TTA flips and shifts): config predict less its stages
PREDICT_VIEWS = {key: value for key, value in config["predict"].items() if key != "stages"}


def get_budget(wildcards):
    """Input of train_fold (and the run page): rule plan_budget's epochs when config budget_minutes is set."""
    return ["results/budget.json"] if BUDGETED else []


def stage_budget(stage):
    """Input of a later stage's fold rule: rule replan's epochs for it when config budget_minutes is set, and
    for a fold of the last stage in a later round rule replan_round's."""

    def budget(wildcards):
        if not BUDGETED:
            return []
        fold = int(wildcards.fold)
        later = round_replan(fold_round(fold)) if stage == FINAL_STAGE and fold in FOLDS else []
        return later or [f"results/budget_{stage}.json"]

    return budget


def get_replans(wildcards):
    """Every replan of the run (the run page shows them): one per stage after the first, and one per later
    round of the last stage's folds."""
    if not BUDGETED:
        return []
    rounds = [path for number in later_rounds() for path in round_replan(number)]
    return [f"results/budget_{stage}.json" for stage in STAGES[1:]] + rounds


def budget_stages():
    """The stages that plan_budget times and scales, with their configured epochs, size, batch, losses and
    augmentation."""
    keys = ("epochs", "size", "batch_size", "loss", "aux_weight", "aux_resolution", "augment")
    return [{"stage": stage, **{k: stage_settings(stage)[k] for k in keys}} for stage in STAGES]


def earlier_runs(stage):
    """{stage: [run.json of each fold]} of the stages before `stage`."""
    return {done: [f"results/{done}/fold{k}/run.json" for k in FOLDS] for done in STAGES[: STAGES.index(stage)]}


def all_cores(wildcards=None):
    """--cores (1 when unset, as under a cluster executor, where workflow.cores raises)."""
    return workflow._cores or 1


def fold_threads(wildcards):
    """Threads of a per-fold job: config fold_threads, or with `share` the --cores spread over the folds."""
    if config["fold_threads"] == "share":
        return max(1, all_cores() // len(FOLDS))
    return config["fold_threads"]


# The rounds in which the fold jobs train, fold_threads each on --cores (as plan_budget counts them): where
# there are several, the last stage is replanned before each later round from its own folds' real epochs
# (rule replan_round), and a last-stage fold of that round waits for the last stage's earlier rounds.
PARALLEL_FOLDS, FOLD_ROUNDS = fold_rounds(len(FOLDS), all_cores(), fold_threads(None))


def later_rounds():
    """The rounds (2, 3, ...) before which the last stage is replanned (replan_round), in a budgeted run whose jobs
    run here, on --cores. Not under a cluster executor (its folds do not wait for each other's cores) nor in
    a cluster job's own snakemake (which sees the node's cores); read when the DAG is built, once the executor
    is known."""
    here = workflow._cores and workflow.local_exec and not (workflow.remote_exec or workflow.subprocess_exec)
    return list(range(2, FOLD_ROUNDS + 1)) if BUDGETED and here else []


def round_replan(number):
    """[rule replan_round's file for round `number`] where the last stage is replanned before it, else []."""
    return [f"results/budget_{FINAL_STAGE}_round{number}.json"] if number in later_rounds() else []


def fold_round(fold):
    """The round (1, 2, ...) in which fold `fold` (one of FOLDS) trains: the folds in their order,
    PARALLEL_FOLDS at a time."""
    return FOLDS.index(fold) // PARALLEL_FOLDS + 1


def predict_after(wildcards):
    """Input of predict_fold: a fold of a round that another round follows waits for that round's replan, so
    that no prediction takes a core from the next round's folds (the plans count every prediction after the
    training, and a late fold would meet its deadline short of its epochs)."""
    fold = int(wildcards.fold)
    return round_replan(fold_round(fold) + 1) if fold in FOLDS else []


def round_folds(number):
    """The folds of round `number`."""
    return [k for k in FOLDS if fold_round(k) == number]


def round_runs(stage, number):
    """{stage: [run.json of each fold]} of the stages before `stage`, and under `stage` its folds of the
    rounds before round `number`: what rule replan_round waits for."""
    earlier = [k for k in FOLDS if fold_round(k) < number]
    return {**earlier_runs(stage), stage: [f"results/{stage}/fold{k}/run.json" for k in earlier]}


# SLURM account and partition of the GPU jobs, from the environment, so that no tracked file is edited:
#   export SALTNET_SLURM_ACCOUNT=myaccount SALTNET_SLURM_PARTITION=gpu
# (or `--set-resources`/`--default-resources slurm_account=... slurm_partition=...`, or your own profile).
SLURM_ENV = {"slurm_account": "SALTNET_SLURM_ACCOUNT", "slurm_partition": "SALTNET_SLURM_PARTITION"}
SLURM_RESOURCES = {key: os.environ[name] for key, name in SLURM_ENV.items() if os.environ.get(name)}


def check_placeholders():
    """A profile copied with its placeholders left in (EDIT_ME...) stops before anything is submitted."""
    given = workflow.resource_settings.default_resources
    for arg in given.args if given else []:
        key, _, value = arg.partition("=")
        if "EDIT_ME" in value:
            how = f"export {SLURM_ENV[key]}=<yours>" if key in SLURM_ENV else f"--default-resources {key}=<yours>"
            raise ValueError(
                f"resource {key}: still the placeholder {value} (from your profile's default-resources or "
                f"--default-resources); set it without editing a tracked file: {how}, or write it in your own "
                "profile (docs/cluster.md)"
            )


def gpu_mem_mb(wildcards, attempt):
    return 8000 * attempt


def gpu_runtime(base_minutes):
    """Runtime in minutes that doubles with each retry, so a resubmitted fold gets longer."""
    return lambda wildcards, attempt: base_minutes * 2 ** (attempt - 1)


def gpu_resources(base_minutes):
    """The resources of a GPU rule: one GPU, memory and runtime growing with each attempt, and the SLURM
    account and partition of the environment."""
    return dict(**SLURM_RESOURCES, gpu=1, mem_mb=gpu_mem_mb, runtime=gpu_runtime(base_minutes))


def check_config_paths():
    """Paths in the config exist (the schema checks the rest), before any job starts."""
    weights = config["encoder_weights"]
    if weights not in ("none", "imagenet") and not os.path.isfile(weights):
        raise ValueError(
            f"config key encoder_weights: {weights!r} is neither 'none', 'imagenet' nor an existing weights file"
        )
    if DEMO:
        from saltnet.data.demo import check_demo_folder

        check_demo_folder(DEMO_DIR)  # never replace a folder the pipeline did not make
    elif not KAGGLE and not os.path.isdir(DATA_DIR):
        hint = " (for the built-in demo data, set data_dir: demo)" if os.path.normpath(DATA_DIR) == DEMO_DIR else ""
        if not os.path.isabs(DATA_DIR):  # snakemake --directory changes the working directory
            hint += (
                f"; looked for {os.path.abspath(DATA_DIR)}: a relative data_dir is resolved against the "
                f"working directory {os.getcwd()} (which snakemake --directory sets), so give an absolute path"
            )
        shown = DATA_DIR if DATA_DIR == config["data_dir"] else f"{DATA_DIR} (from {config['data_dir']!r})"
        problem = "is a file, neither a folder nor a Kaggle zip" if os.path.exists(DATA_DIR) else "does not exist"
        raise ValueError(f"config key data_dir: folder {shown} {problem}{hint}")


def warn_odd_values():
    """Values the schema allows but that are almost surely a mistake: a warning, not an error."""
    threshold = config["threshold"]
    if threshold != "auto" and threshold in (0, 1):
        effect = "almost every pixel is salt" if threshold == 0 else "no pixel is salt, so every mask is empty"
        print(
            f"Warning: config key threshold: {threshold} means {effect} (a pixel is salt where its probability "
            "is above the threshold); did you mean a value like 0.5, or auto?",
            file=sys.stderr,
        )
    min_area, pixels = config["min_area"], config["image_size"] ** 2
    if min_area != "auto" and min_area > pixels:
        print(
            f"Warning: config key min_area: {min_area} is more than the {pixels} pixels of an image, so every "
            "predicted mask is emptied; did you mean auto?",
            file=sys.stderr,
        )
    if config["min_peak"] == 1:
        print(
            "Warning: config key min_peak: 1 empties every mask whose most confident pixel is below probability "
            "1, nearly all of them; did you mean a value like 0.6, or auto?",
            file=sys.stderr,
        )


def check_folds_against_data():
    """folds.n against the number of training images, where they can be counted before any job (the demo's
    n_train, or the PNGs of train/images); rule split_folds checks it again on the packed data."""
    if KAGGLE:
        return  # still zipped: rule split_folds checks it on the packed data
    if DEMO:
        n_images, where = config["demo"]["n_train"], "config key demo.n_train"
    else:
        images = Path(DATA_DIR) / "train" / "images"
        if not images.is_dir():
            return  # pack_data names what is missing
        n_images = sum(1 for p in images.iterdir() if p.suffix.lower() == ".png")
        where = f"{images}"
    if n_images < config["folds"]["n"]:
        raise ValueError(
            f"config key folds.n: {config['folds']['n']} folds need at least as many training images, and "
            f"{where} gives {n_images}; set folds.n to at most {max(n_images, 2)} "
            f"(--config 'folds={{n: {max(min(n_images, 5), 2)}}}')"
        )


try:
    check_placeholders()
    check_config_paths()
    check_folds_against_data()
except (ValueError, FileExistsError) as err:
    stop(err)
warn_odd_values()
