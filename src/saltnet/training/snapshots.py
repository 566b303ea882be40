"""A stage's last epochs as one model: their weights averaged (SWA), BatchNorm statistics recomputed.

Config key `snapshots: K` keeps the weights of each stage's last K epochs
(results/checkpoints/{stage}/fold{k}/snapshots/epoch{e}.pth, callbacks.Snapshots writes them).
Averaging the weights of the end of a run is stochastic weight averaging: Izmailov, Podoprikhin,
Garipov, Vetrov, Wilson, "Averaging Weights Leads to Wider Optima and Better Generalization", UAI
2018; the averaged net's BatchNorm statistics belong to none of the snapshots, so they are measured
again on the training images (torch.optim.swa_utils.update_bn). The alternative, averaging
the snapshots' predictions (a snapshot ensemble: Huang et al., "Snapshot Ensembles: Train 1, get M
for free", ICLR 2017; the 4th place, SeuTao/TGS-Salt-Identification, ensembled cyclic-LR snapshots),
costs one prediction per snapshot. Rule analysis_snapshots (results/analysis/snapshots.json) measures both
on a run's out-of-fold images.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from saltnet.data.loaders import prepare_images

__all__ = ["snapshot_files", "average_weights", "recompute_batchnorm"]


def snapshot_files(folder: str | Path) -> list[Path]:
    """A stage's kept snapshots, by epoch (oldest first); raises FileNotFoundError naming the folder if none."""
    files = [p for p in Path(folder).glob("epoch*.pth") if re.fullmatch(r"epoch\d+\.pth", p.name)]
    if not files:
        raise FileNotFoundError(f"{folder}: no snapshots (epoch<e>.pth); train with config key snapshots > 0")
    return sorted(files, key=lambda p: int(p.stem.removeprefix("epoch")))


def average_weights(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of state dicts of one architecture; integer buffers (BatchNorm's
    num_batches_tracked) are taken from the last. Raises ValueError when their keys differ."""
    if not states:
        raise ValueError("no state dicts to average")
    keys = list(states[-1])
    for i, state in enumerate(states):
        if list(state) != keys:
            raise ValueError(f"state dict {i} has other keys than the last: not snapshots of one model")
    return {k: (torch.stack([s[k].float() for s in states]).mean(0).to(states[-1][k].dtype)
                if states[-1][k].is_floating_point() else states[-1][k].clone()) for k in keys}


def recompute_batchnorm(model: nn.Module, images: np.ndarray, input_size: int, batch_size: int = 16,
                        device: torch.device = torch.device("cpu")) -> nn.Module:
    """Reset every BatchNorm's running mean and variance and measure them again as exact averages over
    `images` ((N, H, W) uint8, the model's training images), in training mode, batches of batch_size
    (the training batch: BatchNorm's batch statistics depend on it), with torch's update_bn.
    Returns the model in eval mode."""
    if len(images) == 0:
        raise ValueError("recompute_batchnorm: no images")
    # whole batches, as training's drop_last (one short batch when there are fewer images)
    starts = range(0, max(1, len(images) - batch_size + 1), batch_size)
    batches = (prepare_images(torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size])).to(device), input_size)
               for i in starts)
    update_bn(batches, model.to(device))
    return model.eval()
