"""TrainSettings: everything that defines a fold's training run, and how a config fills them.

A light module (no torch, no fastai): the Snakefile, parsed by every job, builds the settings of
each stage here, and gpu-check builds them the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TrainSettings", "stage_settings", "file_digest"]


@dataclass(frozen=True)
class TrainSettings:
    """Everything that defines a fold's training run; its hash guards resumption."""

    model: str = "unet_resnet34"
    encoder_weights: str = "none"  # 'imagenet', 'none' or a path; ignored when starting from init weights
    loss: str = "symmetric_lovasz"
    size: int = 128
    epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-3
    wd: float = 1e-7
    seed: int = 42
    bf16: bool | str = "auto"  # bf16 autocast: True, False or 'auto' (see precision.resolve_bf16)
    augment: dict | None = None  # AugmentSettings keywords; None: horizontal flips only
    valid_fraction: float = 1.0  # share of the fold's images scored after each epoch
    deterministic: bool | str = "auto"  # True, False or 'auto' (see determinism.resolve_deterministic)
    checkpoint_minutes: float = 5.0  # resumable checkpoint at most this often (0: every epoch), and at the end
    compile: bool = False  # torch.compile the model for training
    snapshots: int = 0  # keep the weights of the last this many epochs (work_dir/snapshots/epoch{e}.pth)
    swa: int = 0  # > 1: the stage's model is the mean of its last swa epochs' weights (BatchNorm measured again)
    exclude: tuple[str, ...] | list[str] = ()  # filters of saltnet.cleaning: training images left out (still scored)
    aux_weight: float | None = None  # each deep-supervision level's loss weight; None: learner.AUX_WEIGHT

    @property
    def augment_settings(self):
        """The `augment` keywords as augment.AugmentSettings (imported here: it needs torch)."""
        from .augment import AugmentSettings

        return AugmentSettings(**(self.augment or {}))

    def fingerprint(self, fold: int, init_weights: str | None, data_digest: str = "") -> str:
        """Settings, fold, the *content* of the starting weights and of the data: a checkpoint resumes only
        the run it came from (retraining stage 1 or repacking changed data starts the next stage clean)."""
        init = file_digest(init_weights) if init_weights else None
        settings = {k: v for k, v in dataclasses.asdict(self).items() if k not in _NOT_IN_FINGERPRINT
                    and not (k in _HASHED_UNLESS_EMPTY and v in ((), [], None))}
        blob = json.dumps({**settings, "fold": fold, "init": init, "data": data_digest}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# When checkpoints are written, which epochs' weights are kept and whether the last ones are averaged
# after the fit (from the kept files) do not change the fit that a checkpoint resumes.
_NOT_IN_FINGERPRINT = ("checkpoint_minutes", "snapshots", "swa")
# Fields added after runs existed: hashed only when set (an aux_weight of 0 is hashed), so a checkpoint
# written before them still resumes.
_HASHED_UNLESS_EMPTY = ("exclude", "aux_weight")
FIELDS = tuple(f.name for f in dataclasses.fields(TrainSettings))


def stage_settings(config: dict, stage: str, **overrides) -> dict:
    """TrainSettings keywords of stage 'train' or 'finetune' of a validated config (defaults filled):
    every TrainSettings field the config holds at its top level, overridden by the stage's own keys
    (size, epochs, its loss...), then by `overrides`. Plain values in TrainSettings' field order, so
    Snakemake, which pickles them as params, sees no change when a config file is merely reordered; a
    key that is no field comes last (and TrainSettings(**...) rejects it)."""
    merged = {**{k: v for k, v in config.items() if k in FIELDS}, **config[stage], **overrides}
    return {**{k: merged[k] for k in FIELDS if k in merged}, **{k: v for k, v in merged.items() if k not in FIELDS}}


def file_digest(path: str | Path) -> str:
    """sha256 of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
