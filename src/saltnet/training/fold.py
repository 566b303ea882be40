"""Train one fold at one resolution, resumably: fit_one_cycle, best epoch by the competition metric.

A killed run leaves a checkpoint in `work_dir`, written after an epoch at most every
`checkpoint_minutes` (and after the last one); rerunning with the same settings resumes from it (losing
at most that interval plus the epoch in progress), other settings start clean.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from saltnet.config.settings import TrainSettings
from saltnet.data.cleaning import excluded, repeated
from saltnet.data.folds import fold_indices
from saltnet.data.loaders import make_dataloaders
from saltnet.data.pack import PackedData
from saltnet.models import build_model, get_model_spec
from saltnet.models.modelfile import read_model_file
from saltnet.runtime.determinism import resolve_deterministic, seed_everything
from saltnet.runtime.precision import Precision, resolve_bf16
from saltnet.training.callbacks import (
    Autocast,
    BestModel,
    ChannelsLast,
    Checkpoint,
    EpochHistory,
    Snapshots,
    StopOnNonFiniteLoss,
    TimeLimit,
    set_rng_state,
)
from saltnet.training.learner import build_learner
from saltnet.training.snapshots import average_weights, recompute_batchnorm

OWN_FILES = ("checkpoint.pth", "best.pth")  # what a fold writes in its work_dir
SNAPSHOTS = "snapshots"  # work_dir's folder of the last epochs' weights (config key snapshots)

__all__ = ["OWN_FILES", "TrainSettings", "TrainResult", "fold_indices", "train_fold"]

log = logging.getLogger(__name__)


def data_digest(data: PackedData, folds: pd.DataFrame) -> str:
    """sha256 of the packed ids, images, masks and the fold table."""
    digest = hashlib.sha256()
    for array in (data.ids.astype(str), data.images, data.masks):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(pd.util.hash_pandas_object(folds, index=False).to_numpy().tobytes())
    return digest.hexdigest()


@dataclass
class TrainResult:
    state_dict: dict
    history: pd.DataFrame
    best_epoch: int | None
    best_score: float
    resumed_from: int  # epochs that were already done when this run started
    precision: Precision
    epochs: int  # epochs trained: settings.epochs, or fewer where a time limit ended the stage


def valid_subset(valid_idx: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded random `fraction` of the fold's images, for the per-epoch score (OOF scores all of them).

    Scoring the whole fold after every epoch costs about a third of the training time on a CPU;
    the best epoch is still chosen well on a few hundred images.
    """
    keep = valid_count(len(valid_idx), fraction)
    if keep == len(valid_idx):
        return valid_idx
    return np.sort(np.random.default_rng(seed).choice(valid_idx, size=keep, replace=False))


def valid_count(n: int, fraction: float) -> int:
    """How many of a fold's n images valid_subset scores after each epoch."""
    return n if fraction >= 1 else max(1, round(n * fraction))


def _load_checkpoint(path: Path, fingerprint: str, device: torch.device) -> dict | None:
    if not path.exists():
        return None
    state = torch.load(path, map_location=device, weights_only=True)
    if state.get("fingerprint") != fingerprint:
        log.warning("checkpoint %s is from other settings: starting clean", path)
        return None
    return state


def train_fold(data: PackedData, folds: pd.DataFrame, fold: int, settings: TrainSettings,
               work_dir: str | Path, device: torch.device, init_weights: str | None = None,
               extra_cbs: tuple = (), extra: tuple[np.ndarray, np.ndarray] | None = None,
               time_limit_s: float | None = None, deadline: float | None = None) -> TrainResult:
    """Train `fold` (its images are the validation set) and return the best epoch's weights.

    init_weights: a model file (saltnet.models.modelfile) of the same architecture (progressive resizing:
    the 128 px stage's); another architecture is an error that names both.
    extra_cbs: more fastai callbacks (gpu-check's timers).
    extra: (images (K, H, W) uint8, masks (K, H, W) uint8) trained on beside the fold's training images,
    never scored (the pseudo stage's test images).
    time_limit_s: the stage ends after the epoch from which one more would pass it (callbacks.TimeLimit);
    deadline: the same on the clock (time.time()), where the budget gives one (the last stage).
    """
    work_dir = Path(work_dir)
    digest = data_digest(data, folds)
    if extra is not None:
        data, n_own = _with_extra(data, *extra), len(data.ids)
        digest = hashlib.sha256((digest + data_digest(data, folds)).encode()).hexdigest()
    fingerprint = settings.fingerprint(fold, init_weights, digest)
    ckpt = _load_checkpoint(work_dir / "checkpoint.pth", fingerprint, device)
    if ckpt is None:  # never mix two runs; remove only what training writes there
        for name in OWN_FILES:
            (work_dir / name).unlink(missing_ok=True)
        for old in (work_dir / SNAPSHOTS).glob("epoch*.pth"):
            old.unlink()
    work_dir.mkdir(parents=True, exist_ok=True)
    precision = resolve_bf16(settings.bf16, device)  # before seeding: a probe may draw random numbers
    log.info("fold %d: precision %s (%s)", fold, precision.name, precision.reason)
    determinism = resolve_deterministic(settings.deterministic, device)
    log.info("fold %d: deterministic %s (%s)", fold, determinism.on, determinism.reason)
    seed_everything(settings.seed + fold, determinism.on)

    if extra is None:
        train_idx, valid_idx = fold_indices(folds, data.ids, fold)
    else:  # the extra images (after the n_own packed ones) train only
        train_idx, valid_idx = fold_indices(folds, data.ids[:n_own], fold)
        train_idx = np.concatenate([train_idx, np.arange(n_own, len(data.ids))])
    if settings.exclude:  # left out of training only: still scored with the fold (saltnet.data.cleaning)
        dropped = excluded(data.masks[train_idx], settings.exclude)
        log.info("fold %d: %d training images left out (exclude: %s)", fold, int(dropped.sum()),
                 ", ".join(settings.exclude))
        train_idx = train_idx[~dropped]
    if settings.repeat:  # shown twice per epoch (saltnet.data.cleaning)
        again = train_idx[repeated(data.masks[train_idx], settings.repeat)]
        log.info("fold %d: %d training images shown twice per epoch (repeat: %s)", fold, len(again),
                 ", ".join(settings.repeat))
        train_idx = np.concatenate([train_idx, again])
    valid_idx = valid_subset(valid_idx, settings.valid_fraction, settings.seed + fold)
    input_size = get_model_spec(settings.model).input_size(settings.size, data.images.shape[-1])
    dls = make_dataloaders(data.images, data.masks, train_idx, valid_idx, input_size, settings.batch_size, device,
                           settings.augment_settings)
    model = build_model(settings.model, "none" if init_weights else settings.encoder_weights, settings.size)
    if init_weights:
        model.load_state_dict(_init_state(init_weights, settings.model))
    if settings.compile:  # in place: the state dict keeps its keys (torch.compile(model) would prefix them)
        model.compile()

    stage = "pseudo" if extra is not None else "finetune" if init_weights else "train"  # for the log lines
    history = EpochHistory(ckpt["history"] if ckpt else None, fold, stage, settings.size)
    best = BestModel("map_iou", work_dir / "best.pth", *((ckpt["best"], ckpt["best_epoch"]) if ckpt else ()))
    cbs = [StopOnNonFiniteLoss(fold), ChannelsLast(), history, best,
           Checkpoint(work_dir / "checkpoint.pth", fingerprint, best, history, settings.checkpoint_minutes * 60),
           *extra_cbs]
    if settings.snapshots or settings.swa >= 1:
        cbs.append(Snapshots(work_dir / SNAPSHOTS, max(settings.snapshots, settings.swa), rolling=bool(time_limit_s)))
    limit = TimeLimit(time_limit_s, history, deadline) if time_limit_s else None
    if limit:
        cbs.append(limit)
    if precision.bf16:
        cbs.insert(0, Autocast(device.type))
    learn = build_learner(dls, model, settings.loss, settings.wd, cbs, settings.aux_weight,
                          settings.aux_resolution)
    start_epoch = _resume(learn, ckpt) if ckpt else 0
    log.info("fold %d: %d train / %d valid images at %d px, epochs %d..%d", fold, len(train_idx), len(valid_idx),
             settings.size, start_epoch, settings.epochs - 1)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(settings.epochs, settings.lr, wd=settings.wd, start_epoch=start_epoch,
                            div_final=settings.div_final)
    done = len(history.rows)  # settings.epochs, unless the time limit ended the stage
    if settings.swa >= 1:  # the last epoch's weights, or the last epochs' averaged, replace the best epoch's
        _average_last_epochs(learn.model, work_dir / SNAPSHOTS, settings.swa, done, data.images[train_idx],
                             input_size, settings.batch_size, device, fold)
    state = {k: v.detach().cpu().contiguous() for k, v in learn.model.state_dict().items()}
    return TrainResult(state, pd.DataFrame(history.rows), best.best_epoch, float(best.best), start_epoch, precision,
                       done)


def _with_extra(data: PackedData, images: np.ndarray, masks: np.ndarray) -> PackedData:
    """The packed images and masks with `images` and `masks` after them (ids 'extra{i}')."""
    if images.shape[1:] != data.images.shape[1:] or masks.shape != images.shape:
        raise ValueError(f"extra training images {images.shape} and masks {masks.shape} do not match the packed "
                         f"images {data.images.shape[1:]}")
    ids = np.array([f"extra{i}" for i in range(len(images))], dtype=str)
    return PackedData(np.concatenate([data.ids.astype(str), ids]), np.concatenate([data.images, images]),
                      np.concatenate([data.masks, masks.astype(data.masks.dtype)]))


def _init_state(path: str, model: str) -> dict:
    """The weights of model file `path`, which must hold `model` (its size may differ: progressive resizing)."""
    found = read_model_file(path)
    if found.model != model:
        raise ValueError(f"init weights {path} hold {found.describe()}, but this stage trains {model!r}: "
                         "train the first stage again with this config (snakemake -R train_fold)")
    return found.state_dict


def _average_last_epochs(model, folder: Path, k: int, epochs: int, images: np.ndarray, input_size: int,
                         batch_size: int, device: torch.device, fold: int) -> None:
    """Config key swa: load the mean of the last k of `epochs` epochs' weights into `model` (all of them
    when there are fewer; k = 1: the last epoch's), BatchNorm measured again on the fold's training images
    (saltnet.training.snapshots).
    The snapshots are read from disk, so a resumed fold averages the same epochs."""
    files = [folder / f"epoch{e}.pth" for e in range(max(1, epochs - k + 1), epochs + 1)]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: snapshots {', '.join(missing)} missing for swa {k}: delete the fold's "
                                f"checkpoint folder {folder.parent} to train the stage again")
    if len(files) < k:
        log.warning("fold %d: swa %d but only %d epoch(s): averaging all of them", fold, k, len(files))
    started = time.perf_counter()
    model.load_state_dict(average_weights([torch.load(f, map_location=device, weights_only=True) for f in files]))
    if len(files) == 1:  # swa 1: the last epoch as it was, its BatchNorm statistics its own
        log.info("fold %d: the last epoch's weights (%s) kept, not the best epoch's", fold, files[0].stem)
        return
    recompute_batchnorm(model, images, input_size, batch_size, device)
    log.info("fold %d: weights averaged over %s, BatchNorm measured again on %d images (%.1f s)", fold,
             ", ".join(f.stem for f in files), len(images), time.perf_counter() - started)


def _resume(learn, ckpt: dict) -> int:
    """Load model, optimiser and RNG state from a checkpoint; returns the epoch to start from."""
    learn.model.load_state_dict(ckpt["model"])
    learn.create_opt()
    learn.opt.load_state_dict(ckpt["opt"])
    set_rng_state(ckpt["rng"])
    learn.dls.train.rng.setstate(ckpt["dl_rng"])
    log.info("resuming from checkpoint: %d epoch(s) already done", ckpt["epochs_done"])
    return int(ckpt["epochs_done"])
