"""Run-length encoding in the Kaggle TGS format.

Format (competition "Evaluation" page): pairs ``start length`` separated by spaces, starts
1-indexed, pixels numbered top to bottom then left to right (column-major), pairs sorted and
disjoint. An empty mask is the empty string.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rle_encode", "rle_decode"]


def rle_encode(mask: np.ndarray) -> str:
    """mask: (H, W) bool-like -> RLE string ('' for an empty mask)."""
    pixels = np.asarray(mask, dtype=bool).flatten(order="F")
    padded = np.concatenate([[False], pixels, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1]) + 1  # 1-indexed run starts and ends
    edges[1::2] -= edges[::2]
    return " ".join(map(str, edges))


def rle_decode(rle: str, shape: tuple[int, int] = (101, 101)) -> np.ndarray:
    """RLE string -> (H, W) bool mask. Raises ValueError saying what is malformed."""
    rle = "" if rle is None else str(rle).strip()
    n_pixels = shape[0] * shape[1]
    flat = np.zeros(n_pixels, dtype=bool)
    if not rle or rle == "nan":
        return flat.reshape(shape, order="F")
    tokens = rle.split()
    bad = next((t for t in tokens if not (t.isascii() and t.isdigit())), None)  # '²'.isdigit() is True
    if bad is not None:
        raise ValueError(f"RLE has a token that is not a positive integer: {bad[:20]!r} in {rle[:60]!r}")
    if len(tokens) % 2:
        raise ValueError(f"RLE has an odd number of values ({len(tokens)}): expected start/length pairs")
    digits = len(str(n_pixels))  # compare lengths first: int() refuses over 4300 digits, int64 over 19
    too_large = next((t for t in tokens if len(t.lstrip("0")) > digits or int(t) > n_pixels), None)
    if too_large is not None:
        shown = too_large if len(too_large) <= 30 else f"{too_large[:30]}... ({len(too_large)} digits)"
        raise ValueError(f"RLE value {shown} is larger than the {n_pixels} pixels of a {shape} mask")
    pairs = np.asarray(tokens, dtype=np.int64).reshape(-1, 2)
    starts, lengths = pairs[:, 0], pairs[:, 1]
    if (starts < 1).any() or (lengths < 1).any():
        raise ValueError("RLE starts are 1-indexed and lengths must be >= 1")
    ends = starts + lengths - 1
    if (ends > n_pixels).any():
        raise ValueError(f"RLE run ends at pixel {ends.max()}, past the {n_pixels} pixels of a {shape} mask")
    if (starts[1:] <= ends[:-1]).any():
        raise ValueError("RLE runs are not sorted and disjoint")
    for start, length in zip(starts, lengths):
        flat[start - 1 : start - 1 + length] = True
    return flat.reshape(shape, order="F")
