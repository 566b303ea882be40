"""Batches straight from in-memory uint8 arrays: index, then resize/normalise/flip on the device.

fastai's DataBlock costs about 22 ms a batch of 32 here, indexing an in-memory uint8 tensor about
1 ms, so the loaders below are fastai DataLoaders whose items are indices and whose batches are
slices of the packed arrays. Targets stay at the native resolution (the metric is scored there);
the loss resizes them to the model's resolution.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader

from saltnet.data.augment import AugmentSettings, augment_batch

__all__ = ["prepare_images", "SaltArrays", "SaltDL", "make_dataloaders"]

# The encoders are ImageNet classifiers; the gray image is repeated over their three channels.
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def prepare_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """images: (N, H, W) uint8 -> (N, 3, size, size) float, normalised, channels_last."""
    x = images.unsqueeze(1).float() / 255.0
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x.expand(-1, 3, -1, -1) - IMAGENET_MEAN.to(x.device)) / IMAGENET_STD.to(x.device)
    return x.contiguous(memory_format=torch.channels_last)


class SaltArrays:
    """images: (N, H, W) uint8; masks: (N, H, W) uint8 or None. Yields (x, y) or (x,) batches."""

    def __init__(self, images: np.ndarray, masks: np.ndarray | None, size: int, augment: AugmentSettings | None):
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.masks = None if masks is None else torch.from_numpy(np.ascontiguousarray(masks))
        self.size, self.augment = size, augment

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> int:
        return i

    def batch(self, idxs: list[int]) -> tuple[torch.Tensor, ...]:
        idx = torch.as_tensor(idxs, dtype=torch.long)
        return (self.images[idx],) if self.masks is None else (self.images[idx], self.masks[idx])

    def transform(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """(uint8 images[, uint8 masks]) -> (x (N,3,S,S) float[, y (N,1,H,W) float])."""
        x = prepare_images(batch[0], self.size)
        ys = [m.unsqueeze(1).float() for m in batch[1:]]
        if self.augment is not None:  # the same geometry for image and mask
            x, ys = augment_batch(x, ys, self.augment)
        return (x, *ys)


class SaltDL(DataLoader):
    """A fastai DataLoader over :class:`SaltArrays`: items are indices, batches are array slices."""

    def create_item(self, i):
        return i

    def create_batch(self, idxs):
        return self.dataset.batch(idxs)

    def retain(self, res, b):
        return res

    def after_batch(self, b):
        return self.dataset.transform(b)


def make_dataloaders(
    images: np.ndarray, masks: np.ndarray, train_idx: np.ndarray, valid_idx: np.ndarray,
    size: int, batch_size: int, device: torch.device, augment: AugmentSettings = AugmentSettings(),
) -> DataLoaders:
    """Train (shuffled, augmented, last partial batch dropped) and valid loaders for one fold."""
    train = SaltArrays(images[train_idx], masks[train_idx], size, augment=augment)
    valid = SaltArrays(images[valid_idx], masks[valid_idx], size, augment=None)
    drop_last = len(train_idx) > batch_size
    return DataLoaders(
        SaltDL(train, bs=batch_size, shuffle=True, drop_last=drop_last, device=device),
        SaltDL(valid, bs=batch_size, shuffle=False, device=device),
        device=device,
    )
