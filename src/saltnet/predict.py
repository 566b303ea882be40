"""Fold predictions: the image and its horizontal flip, flip undone, probabilities averaged."""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import prepare_images

__all__ = ["predict_probs"]

log = logging.getLogger(__name__)


def _progress_points(n_batches: int, parts: int = 4) -> set[int]:
    """Batch counts after which to log: about every 1/parts of the batches, always the last one."""
    return {max(1, round(n_batches * k / parts)) for k in range(1, parts + 1)}


@torch.inference_mode()
def predict_probs(model: nn.Module, images: np.ndarray, size: int, device: torch.device,
                  batch_size: int = 32, tta: bool = True, bf16: bool = False, desc: str = "predict") -> np.ndarray:
    """images: (N, H, W) uint8 -> (N, H, W) float16 salt probabilities at the native H, W.

    Logs progress about every 25% of the batches, each line starting with `desc` (e.g. 'fold 0 test').
    """
    model = model.to(device).eval().to(memory_format=torch.channels_last)
    out = np.empty(images.shape, dtype=np.float16)
    n_batches, started = -(-len(images) // batch_size), time.time()
    report_after = _progress_points(n_batches)
    for batch_no, start in enumerate(range(0, len(images), batch_size), 1):
        batch = torch.from_numpy(images[start : start + batch_size]).to(device)
        x = prepare_images(batch, size)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            probs = torch.sigmoid(model(x).float())
            if tta:
                probs = (probs + torch.sigmoid(model(x.flip(-1)).float()).flip(-1)) / 2
        probs = F.interpolate(probs, size=images.shape[1:], mode="bilinear", align_corners=False)
        out[start : start + len(batch)] = probs[:, 0].cpu().numpy().astype(np.float16)
        if batch_no in report_after:
            elapsed = time.time() - started
            log.info("%s: %d/%d images (%d%%), %.0f s, ~%.0f s left", desc, start + len(batch), len(images),
                     100 * batch_no // n_batches, elapsed, elapsed / batch_no * (n_batches - batch_no))
    return out
