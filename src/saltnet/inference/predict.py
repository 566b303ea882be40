"""Fold predictions, test-time augmented: the image and its horizontal flip, optionally also shifted by a
few pixels; each view's prediction brought back onto the image, probabilities averaged."""

from __future__ import annotations

import logging
import time
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from saltnet.data.loaders import prepare_images

__all__ = ["predict_probs", "tta_views"]

log = logging.getLogger(__name__)


def _progress_points(n_batches: int, parts: int = 4) -> set[int]:
    """Batch counts after which to log: about every 1/parts of the batches, always the last one."""
    return {max(1, round(n_batches * k / parts)) for k in range(1, parts + 1)}


def tta_views(flip: bool, shifts: Sequence[Sequence[int]] = ()) -> list[tuple[int, int, bool]]:
    """The views one image is predicted from: (dy, dx, flipped), the unshifted image first.

    Every shift (dy, dx) other than (0, 0) adds a view, and with `flip` each view also its mirror.
    """
    offsets = dict.fromkeys([(0, 0)] + [(int(dy), int(dx)) for dy, dx in shifts])  # ordered, no view twice
    return [(dy, dx, mirrored) for dy, dx in offsets for mirrored in ((False, True) if flip else (False,))]


def _shifted(x: torch.Tensor, dy: int, dx: int, margin: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H, W): the window whose pixel (i, j) is x's (i + dy, j + dx), reflected
    beyond the border (the content moves up by dy and left by dx)."""
    if margin == 0:
        return x
    padded = F.pad(x, (margin,) * 4, mode="reflect")
    h, w = x.shape[-2:]
    return padded[..., margin + dy : margin + dy + h, margin + dx : margin + dx + w]


def _view_probs(model: nn.Module, x: torch.Tensor, views: list[tuple[int, int, bool]]) -> torch.Tensor:
    """(N, C, H, W) input -> (N, 1, H, W): sigmoid of each view's logits, put back where its pixels came
    from, averaged over the views that saw each pixel (the unshifted ones see all of them)."""
    margin = max((max(abs(dy), abs(dx)) for dy, dx, _ in views), default=0)
    h, w = x.shape[-2:]
    if margin >= min(h, w):
        raise ValueError(f"a TTA shift of {margin} px does not fit a {h}x{w} input")
    total = x.new_zeros((x.shape[0], 1, h + 2 * margin, w + 2 * margin), dtype=torch.float32)
    count = torch.zeros_like(total[:1])
    for dy, dx, mirrored in views:
        view = _shifted(x, dy, dx, margin)
        logits = model(view.flip(-1) if mirrored else view).float()
        probs = torch.sigmoid(logits.flip(-1) if mirrored else logits)
        window = (..., slice(margin + dy, margin + dy + h), slice(margin + dx, margin + dx + w))
        total[window] += probs
        count[window] += 1
    return (total / count.clamp_min(1))[..., margin : margin + h, margin : margin + w]


@torch.inference_mode()
def predict_probs(model: nn.Module, images: np.ndarray, size: int, device: torch.device,
                  batch_size: int = 32, tta: bool = True, bf16: bool = False, desc: str = "predict",
                  shifts: Sequence[Sequence[int]] = ()) -> np.ndarray:
    """images: (N, H, W) uint8 -> (N, H, W) float16 salt probabilities at the native H, W.

    tta: also the horizontal flip; shifts: (dy, dx) pixel offsets at the model's input size, each one
    more view (and its flip); see tta_views. Logs progress about every 25% of the batches, each line
    starting with `desc` (e.g. 'fold 0 test').
    """
    model = model.to(device).eval().to(memory_format=torch.channels_last)
    views = tta_views(tta, shifts)
    out = np.empty(images.shape, dtype=np.float16)
    n_batches, started = -(-len(images) // batch_size), time.time()
    report_after = _progress_points(n_batches)
    for batch_no, start in enumerate(range(0, len(images), batch_size), 1):
        batch = torch.from_numpy(images[start : start + batch_size]).to(device)
        x = prepare_images(batch, size)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            probs = _view_probs(model, x, views)
        probs = F.interpolate(probs, size=images.shape[1:], mode="bilinear", align_corners=False)
        out[start : start + len(batch)] = probs[:, 0].cpu().numpy().astype(np.float16)
        if batch_no in report_after:
            elapsed = time.time() - started
            log.info("%s: %d/%d images (%d%%), %.0f s, ~%.0f s left", desc, start + len(batch), len(images),
                     100 * batch_no // n_batches, elapsed, elapsed / batch_no * (n_batches - batch_no))
    return out
