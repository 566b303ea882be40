"""TrainSettings: everything that defines a fold's training run, and how a config fills them.

A light module (no torch, no fastai): the Snakefile, parsed by every job, builds the settings of
each stage here, and gpu-check builds them the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from saltnet.config.resolve import schema_defaults

__all__ = ["TrainSettings", "stage_settings", "settings_of", "file_digest", "LATER_FIELDS", "later_default"]


_TOP = schema_defaults()  # the schema's top-level defaults: the only defaults TrainSettings has
_STAGE = schema_defaults(section="stage")
_AUGMENT = schema_defaults(section="augment")


@dataclass(frozen=True)
class TrainSettings:
    """Everything that defines a fold's training run; its hash guards resumption.

    Built from a resolved config by `stage_settings` (the rules, gpu-check, the tools). The fields a
    preset must state (the model, the stage's size, epochs, batch, lr, wd) have no default; the others
    take the schema's, so that code and schema cannot disagree (tests/test_presets.py checks it).
    """

    model: str
    size: int
    epochs: int
    batch_size: int
    lr: float
    wd: float
    encoder_weights: str = _TOP["encoder_weights"]  # 'imagenet', 'none' or a path; ignored with init weights
    loss: str = _TOP["loss"]
    seed: int = _TOP["seed"]
    bf16: bool | str = _TOP["bf16"]  # bf16 autocast: True, False or 'auto' (see precision.resolve_bf16)
    augment: dict = field(default_factory=lambda: dict(_AUGMENT))  # AugmentSettings keywords
    valid_fraction: float = _TOP["valid_fraction"]  # share of the fold's images scored after each epoch
    deterministic: bool | str = _TOP["deterministic"]  # True, False or 'auto' (see determinism)
    checkpoint_minutes: float = _TOP["checkpoint_minutes"]  # resumable checkpoint at most this often, and at the end
    compile: bool = _TOP["compile"]  # torch.compile the model for training
    snapshots: int = _TOP["snapshots"]  # keep the weights of the last this many epochs (work_dir/snapshots)
    swa: int = _STAGE["swa"]  # > 1: the stage's model is the mean of its last swa epochs' weights
    div_final: float = _STAGE["div_final"]  # the one-cycle schedule ends at lr / div_final
    exclude: tuple[str, ...] | list[str] = tuple(_TOP["exclude"])  # saltnet.data.cleaning filters: left out of training
    repeat: tuple[str, ...] | list[str] = tuple(_TOP["repeat"])  # saltnet.data.cleaning filters: twice per epoch
    aux_weight: float = _TOP["aux_weight"]  # each deep-supervision level's loss weight
    aux_resolution: str = _TOP["aux_resolution"]  # where the levels' loss is taken (learner.AUX_TARGETS)

    @property
    def augment_settings(self):
        """The `augment` keywords as augment.AugmentSettings (imported here: it needs torch)."""
        from saltnet.data.augment import AugmentSettings

        return AugmentSettings(**self.augment)

    def fingerprint(self, fold: int, init_weights: str | None, data_digest: str = "") -> str:
        """Settings, fold, the *content* of the starting weights and of the data: a checkpoint resumes only
        the run it came from (retraining stage 1 or repacking changed data starts the next stage clean)."""
        init = file_digest(init_weights) if init_weights else None
        settings = {k: v for k, v in dataclasses.asdict(self).items() if k not in _NOT_IN_FINGERPRINT
                    and not (k in LATER_FIELDS and is_later_default(k, v))}
        blob = json.dumps({**settings, "fold": fold, "init": init, "data": data_digest}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# When checkpoints are written, which epochs' weights are kept and whether the last ones are averaged
# after the fit (from the kept files) do not change the fit that a checkpoint resumes.
_NOT_IN_FINGERPRINT = ("checkpoint_minutes", "snapshots", "swa")
# Fields added after runs existed: a checkpoint or model file written before holds each at its default, so
# it is hashed only when set otherwise (such a checkpoint still resumes) and a file without it reads as the default.
LATER_FIELDS = ("exclude", "repeat", "aux_resolution", "div_final")
FIELDS = tuple(f.name for f in dataclasses.fields(TrainSettings))


def later_default(name: str):
    """TrainSettings' default of field `name` (one of LATER_FIELDS)."""
    spec = TrainSettings.__dataclass_fields__[name]
    return spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default


def is_later_default(name: str, value) -> bool:
    """`value` of field `name` is its default (None, and a list or tuple spelling, included)."""
    return value is None or json.dumps(value) == json.dumps(later_default(name))


def settings_of(config: dict, stage: str, **overrides) -> "TrainSettings":
    """TrainSettings of stage 'train' or 'finetune' of a resolved config (saltnet.config.resolve.resolve_config):
    what the rules train; every tool that trains a preset's stage builds its settings here."""
    return TrainSettings(**stage_settings(config, stage, **overrides))


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


def write_resolved_config(out: str | Path, files: list, config: dict, stages: dict, threads: int, cores: int) -> None:
    """The YAML of rule resolved_config: config files, --cores, threads per job, each stage's settings, config."""
    import yaml

    from saltnet.runtime.atomic import write_text

    plain = json.loads(json.dumps({"config_files": list(files), "cores": cores, "threads_per_fold_job": threads,
                                   "stages": dict(stages), "config": dict(config)}, default=list))
    write_text(out, yaml.safe_dump(plain, sort_keys=False, width=120))
