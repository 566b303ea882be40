"""Fold predictions: the image and its horizontal flip, flip undone, probabilities averaged."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import prepare_images

__all__ = ["predict_probs"]


@torch.inference_mode()
def predict_probs(model: nn.Module, images: np.ndarray, size: int, device: torch.device,
                  batch_size: int = 32, tta: bool = True, bf16: bool = False) -> np.ndarray:
    """images: (N, H, W) uint8 -> (N, H, W) float16 salt probabilities at the native H, W."""
    model = model.to(device).eval().to(memory_format=torch.channels_last)
    out = np.empty(images.shape, dtype=np.float16)
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(images[start : start + batch_size]).to(device)
        x = prepare_images(batch, size)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            probs = torch.sigmoid(model(x).float())
            if tta:
                probs = (probs + torch.sigmoid(model(x.flip(-1)).float()).flip(-1)) / 2
        probs = F.interpolate(probs, size=images.shape[1:], mode="bilinear", align_corners=False)
        out[start : start + len(batch)] = probs[:, 0].cpu().numpy().astype(np.float16)
    return out
