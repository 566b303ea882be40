"""A model file that knows what it is: the weights with the architecture, input size, stage and settings.

`results/{train,finetune}/fold{k}/model.pth` holds a dict (loadable with torch.load(weights_only=True)):

    format           "saltnet-model/1"
    model            registry name (saltnet.models.MODELS)
    size             the stage's size in px (what build_model takes)
    stage            "train" or "finetune"
    settings         the TrainSettings fields it was trained with (epochs as really trained)
    settings_digest  sha256 of those settings (16 hex digits)
    state_dict       the weights

Prediction and every tool build the model from the file, never from flags or the config of the day;
`check_model_file` refuses a file whose recipe differs from the config it is used with, naming both.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from saltnet.config.settings import LATER_FIELDS, later_default
from saltnet.models.registry import MODELS, build_model
from saltnet.models.weights import safe_load
from saltnet.runtime.atomic import atomic_path

__all__ = ["FORMAT", "ModelFile", "settings_digest", "save_model_file", "read_model_file", "check_model_file",
           "load_model"]

FORMAT = "saltnet-model/1"
# What may differ between a model file and the config it is used with: the epochs (a time budget plans
# them at run time), what only decides which weights are kept on disk, and how the kernels ran.
NOT_RECIPE = ("epochs", "checkpoint_minutes", "snapshots", "compile", "deterministic")


def _canonical(value) -> str:
    """JSON of a settings value, key order and list/tuple spelling aside."""
    return json.dumps(value, sort_keys=True, default=list)


def settings_digest(settings: dict) -> str:
    """sha256 (16 hex digits) of a settings dict."""
    return hashlib.sha256(_canonical(settings).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ModelFile:
    """What a model file says of itself, and its weights."""

    path: str
    model: str
    size: int
    stage: str
    settings: dict
    settings_digest: str
    state_dict: dict

    def describe(self) -> str:
        return f"{self.model} at {self.size} px, stage {self.stage}, settings {self.settings_digest}"

    def build(self) -> nn.Module:
        """The model with these weights, on the CPU, in eval mode."""
        model = build_model(self.model, "none", self.size)
        model.load_state_dict(self.state_dict)
        return model.eval()


def save_model_file(path: str | Path, state_dict: dict, settings, stage: str) -> None:
    """Write `state_dict` with its architecture, size, stage and `settings` (a TrainSettings) atomically."""
    fields = dataclasses.asdict(settings)
    payload = {"format": FORMAT, "model": settings.model, "size": int(settings.size), "stage": stage,
               "settings": fields, "settings_digest": settings_digest(fields),
               "state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_model_file(path: str | Path) -> ModelFile:
    """Read a model file; ValueError naming the file when it is none (a bare state dict included)."""
    path = Path(path)
    payload = safe_load(path, "model file")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"model file {path} does not say what model it holds (no {FORMAT!r} header: a bare "
                         "state dict, or written by an older version of the pipeline); train the stage again "
                         "(snakemake -R train_fold) to get a file with its architecture")
    if payload["model"] not in MODELS:
        raise ValueError(f"model file {path} holds model {payload['model']!r}, which this version does not "
                         f"register (models: {', '.join(MODELS)})")
    return ModelFile(str(path), payload["model"], int(payload["size"]), payload["stage"], payload["settings"],
                     payload["settings_digest"], payload["state_dict"])


def _filled(settings: dict, key: str):
    """settings[key]; a field that a file written before it existed lacks reads as its default."""
    value = settings.get(key)
    return later_default(key) if value is None and key in LATER_FIELDS else value


def check_model_file(found: ModelFile, expected, role: str = "the config") -> None:
    """Raise ValueError unless `found` was trained with the recipe of `expected` (TrainSettings): same model
    and size, and the same settings apart from NOT_RECIPE. The message names both sides of each difference."""
    wanted = dataclasses.asdict(expected)
    differ = [key for key in sorted(set(wanted) | set(found.settings))
              if key not in NOT_RECIPE and _canonical(_filled(found.settings, key)) != _canonical(_filled(wanted, key))]
    if differ:
        lines = "; ".join(f"{k}: file {found.settings.get(k)!r}, {role} {wanted.get(k)!r}" for k in differ[:6])
        raise ValueError(f"model file {found.path} ({found.describe()}) was trained with other settings than "
                         f"{role} asks for ({lines}); train it again with this config (snakemake -R "
                         f"{found.stage}_fold) or use the config it was trained with")


def load_model(path: str | Path, expected=None) -> tuple[nn.Module, ModelFile]:
    """(model built from the file, the file's header and weights); with `expected`, checked against it."""
    found = read_model_file(path)
    if expected is not None:
        check_model_file(found, expected)
    return found.build(), found
