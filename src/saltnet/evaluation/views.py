"""What the prediction's parts buy on a finished run's out-of-fold images, by predicting them again with
the run's own model files (each model built from what its file says it is): test-time views and the
two stages' mean (rule analysis_tta), and snapshot averages of a stage's last epochs (rule
analysis_snapshots, where the run kept snapshots). Each variant's OOF score raw and post-processed (as
rule postprocess searches it), and the seconds its predictions took.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from saltnet.data.folds import fold_indices
from saltnet.data.pack import PackedData
from saltnet.evaluation.oof import OofData
from saltnet.evaluation.postprocess import raw_and_postprocessed
from saltnet.inference.predict import predict_probs
from saltnet.models import get_model_spec
from saltnet.models.modelfile import read_model_file
from saltnet.models.weights import load_state_dict_file
from saltnet.training.snapshots import average_weights, recompute_batchnorm, snapshot_files

__all__ = ["TTA_VIEWS", "tta_gain", "snapshot_gain"]

# view -> (stage whose model predicts, horizontal flip, pixel shifts); credit: shifted views as in
# SeuTao/TGS-Salt-Identification's TTA, the flip as in every top solution.
TTA_VIEWS: dict[str, tuple[str, bool, list]] = {
    "finetune_plain": ("finetune", False, []),
    "finetune_flip": ("finetune", True, []),
    "finetune_flip_h8": ("finetune", True, [(0, 8), (0, -8)]),
    "train_flip": ("train", True, []),
}


def _scored(probs: list[np.ndarray], oof: OofData, seconds: float) -> dict:
    return {**raw_and_postprocessed(np.concatenate(probs).astype(np.float32), oof.truth),
            "seconds": round(seconds, 1)}


def tta_gain(oof: OofData, models: dict[int, dict[str, str]], device: torch.device, batch_size: int) -> dict:
    """Every view of TTA_VIEWS on each fold's own images (models: {fold: {stage: model.pth}}), the mean of
    the two stages' flip predictions, and the run's own oof.npz for reference. oof must be in fold order."""
    folds = sorted(models)
    files = {(fold, stage): read_model_file(models[fold][stage]) for fold in folds  # each file read once
             for stage in {stage for stage, _, _ in TTA_VIEWS.values()}}
    probs, out = {}, {}
    for name, (stage, flip, shifts) in TTA_VIEWS.items():
        started, parts = time.time(), []
        for fold in folds:
            found = files[fold, stage]
            size = get_model_spec(found.model).input_size(found.size, oof.images.shape[-1])
            parts.append(predict_probs(found.build(), oof.images[oof.fold == fold], size, device, batch_size,
                                       tta=flip, shifts=shifts, desc=f"{name} fold {fold}"))
        probs[name] = parts
        out[name] = _scored(parts, oof, time.time() - started)
    mean = [(a.astype(np.float32) + b) / 2 for a, b in zip(probs["finetune_flip"], probs["train_flip"])]
    out["two_stages_flip"] = _scored(mean, oof, out["finetune_flip"]["seconds"] + out["train_flip"]["seconds"])
    out["run_oof"] = raw_and_postprocessed(oof.probs.astype(np.float32), oof.truth)
    return out


def snapshot_gain(oof: OofData, train: PackedData, table: pd.DataFrame, stage_dir: Callable[[int], str],
                  snapshot_dir: Callable[[int], str], ks: list[int], device: torch.device) -> dict:
    """A stage's final model (model.pth) against the mean of its last k snapshots' predictions (a snapshot
    ensemble, k predictions) and the mean of their weights with BatchNorm measured again on the fold's
    training images (SWA, one prediction), for each k of `ks`, on each fold's own images with the flip.
    stage_dir(fold): the folder of the stage's model.pth; snapshot_dir(fold): its snapshots."""
    folds = sorted(set(oof.fold.tolist()))
    first = read_model_file(f"{stage_dir(folds[0])}/model.pth")
    size = get_model_spec(first.model).input_size(first.size, oof.images.shape[-1])
    parts: dict[str, list[np.ndarray]] = {}
    seconds: dict[str, float] = {}

    def predict(state: dict, fold: int, name: str, batchnorm: bool = False) -> np.ndarray:
        started = time.time()
        model = dataclasses.replace(first, state_dict=state).build()
        if batchnorm:  # the fold's training images, as train_fold's swa measures them
            recompute_batchnorm(model, train.images[fold_indices(table, train.ids, fold)[0]], size,
                                first.settings["batch_size"], device)
        probs = predict_probs(model, oof.images[oof.fold == fold], size, device, 64, tta=True,
                              desc=f"{name} fold {fold}")
        seconds[name] = seconds.get(name, 0.0) + time.time() - started
        return probs

    for fold in folds:
        files = snapshot_files(snapshot_dir(fold))
        if max(ks) > len(files):
            raise ValueError(f"fold {fold}: {len(files)} snapshots in {snapshot_dir(fold)}, fewer than {max(ks)}")
        states = [load_state_dict_file(str(f)) for f in files[-max(ks):]]  # the newest max(ks): all that is used
        parts.setdefault("final", []).append(
            predict(read_model_file(f"{stage_dir(fold)}/model.pth").state_dict, fold, "final"))
        newest_first = [predict(state, fold, f"snapshot_{i}") for i, state in enumerate(reversed(states))]
        for k in ks:
            parts.setdefault(f"ensemble_{k}", []).append(np.mean(newest_first[:k], axis=0))
            seconds[f"ensemble_{k}"] = sum(seconds.get(f"snapshot_{i}", 0.0) for i in range(k))
            parts.setdefault(f"swa_{k}", []).append(predict(average_weights(states[-k:]), fold, f"swa_{k}", True))
    return {name: _scored(p, oof, seconds.get(name, 0.0)) for name, p in parts.items()}
