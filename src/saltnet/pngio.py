"""PNG reading for the competition layout: RGB images with R=G=B, masks 16-bit {0,65535} or 8-bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["read_image", "read_mask", "write_png"]


def _read(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(img)
    except FileNotFoundError:
        raise
    except Exception as err:  # PIL raises several types for truncated or foreign files
        raise ValueError(f"{path}: not a readable PNG ({err})") from err


def read_image(path: str | Path) -> np.ndarray:
    """(H, W) uint8 gray image; RGB inputs keep their first channel (the data has R=G=B)."""
    arr = _read(Path(path))
    if arr.ndim == 3:
        arr = arr[..., 0]
    if arr.dtype != np.uint8:
        raise ValueError(f"{path}: expected an 8-bit image, got {arr.dtype}")
    return arr


def read_mask(path: str | Path) -> np.ndarray:
    """(H, W) uint8 mask in {0, 1}; raises if it has values other than 0 and one positive value."""
    arr = _read(Path(path))
    if arr.ndim == 3:
        arr = arr[..., 0]
    values = np.unique(arr)
    if len(values) > 2 or (len(values) == 2 and values[0] != 0):
        raise ValueError(f"{path}: mask values must be 0 and one positive value, found {values[:6].tolist()}")
    return (arr > 0).astype(np.uint8)


def write_png(path: str | Path, arr: np.ndarray, mode: str | None = None) -> None:
    """Write `arr` as PNG; mode 'RGB' repeats a (H, W) uint8 array over three channels."""
    if mode == "RGB":
        arr = np.repeat(arr[..., None], 3, axis=2)
    Image.fromarray(arr).save(path)
