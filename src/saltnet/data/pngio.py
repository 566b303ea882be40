"""PNG reading, exact or refused: every file becomes the 8-bit gray the model expects, or an error that
names the file and says what it is.

The competition's images are 8-bit RGB PNGs with R=G=B; its masks 16-bit gray {0, 65535} when
non-empty and 8-bit gray when empty. Accepted, because they convert exactly: gray of any bit depth
(16-bit images only when every value is a multiple of 257), RGB/RGBA/gray+alpha whose channels are
equal and whose alpha is opaque, a palette whose colours in use are opaque gray. Refused: other file
formats renamed .png (a JPEG's pixels are not the original ones), channels that differ, transparent
pixels, 16-bit colour (PIL keeps only the high byte of each sample), animated PNGs.
Bit depth, colour type, palette and transparency come from the PNG chunks themselves (spec:
https://www.w3.org/TR/png/), since PIL reports neither the true depth of colour images nor tRNS
consistently; PIL only decodes the pixels.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["read_image", "read_mask", "write_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR = {0: "gray", 2: "RGB", 3: "palette", 4: "gray+alpha", 6: "RGBA"}
# PIL mode of each (colour type, bit depth) this reader decodes; 16-bit colour is refused before it.
_PIL_MODE = {(0, 1): ("1",), (0, 2): ("L",), (0, 4): ("L",), (0, 8): ("L",), (0, 16): ("I;16", "I"),
             (2, 8): ("RGB",), (4, 8): ("LA",), (6, 8): ("RGBA",),
             **{(3, depth): ("P",) for depth in (1, 2, 4, 8)}}
_SAVE_AS = {"image": "save it as an 8-bit gray PNG (or 8-bit RGB with R=G=B, as in the competition data)",
            "mask": "save it as a gray PNG (8-bit, or 16-bit {0, 65535} as in the competition data)"}


@dataclass(frozen=True)
class _Header:
    """What the PNG chunks say: IHDR, PLTE (K, 3) uint8, tRNS bytes, acTL frame count."""

    width: int
    height: int
    bit_depth: int
    colour_type: int
    palette: np.ndarray | None = None
    trns: bytes | None = None
    frames: int = 1

    def describe(self) -> str:
        """'an 8-bit RGB', 'a 16-bit gray', ..."""
        colour = _COLOUR.get(self.colour_type, f"colour type {self.colour_type}")
        return f"{'an' if self.bit_depth == 8 else 'a'} {self.bit_depth}-bit {colour}"


def _read_bytes(path: Path) -> bytes:
    if path.is_symlink() and not path.exists():
        raise ValueError(f"{path}: is a broken symbolic link (to {os.readlink(path)!r}, which does not exist)")
    try:
        data = path.read_bytes()
    except OSError as err:  # missing, a folder, no permission
        raise ValueError(f"{path}: cannot be read ({err.strerror or err})") from err
    if not data:
        raise ValueError(f"{path}: not a readable PNG (the file is empty, 0 bytes)")
    return data


def _foreign_format(path: Path, data: bytes, kind: str) -> ValueError:
    """The error for a file without the PNG signature: what PIL says it is, if anything."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
    except Exception:  # PIL raises several types for unknown bytes
        return ValueError(f"{path}: not a readable PNG (no PNG signature, and no image format PIL knows)")
    lossy = " (lossy: its pixels are not the original ones, so use the original PNG)" if fmt in ("JPEG", "MPO") else ""
    return ValueError(f"{path}: {kind} is a {fmt} file, not a PNG{lossy}; {_SAVE_AS[kind]}")


def _chunks(data: bytes):
    """(type, body) of each chunk before the image data; stops quietly where the file is cut short."""
    view, pos = memoryview(data), len(_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", view[pos : pos + 8])
        body = view[pos + 8 : pos + 8 + length]
        if len(body) < length or kind in (b"IDAT", b"IEND"):
            return
        yield kind, bytes(body)
        pos += 12 + length


def _header(path: Path, data: bytes, kind: str) -> _Header:
    if not data.startswith(_SIGNATURE):
        raise _foreign_format(path, data, kind)
    chunks = list(_chunks(data))
    if not chunks or chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        raise ValueError(f"{path}: not a readable PNG (no IHDR header)")
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    found = dict(chunks[1:])
    plte = found.get(b"PLTE")
    palette = None if plte is None else np.frombuffer(plte[: len(plte) // 3 * 3], np.uint8).reshape(-1, 3)
    frames = struct.unpack(">I", found[b"acTL"][:4])[0] if len(found.get(b"acTL", b"")) >= 4 else 1
    return _Header(width, height, depth, colour, palette, found.get(b"tRNS"), frames)


def _decode(path: Path, data: bytes, head: _Header, kind: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            mode, arr = img.mode, np.asarray(img)
    except Exception as err:  # PIL raises several types for truncated or corrupt files
        raise ValueError(f"{path}: not a readable PNG ({err})") from err
    if mode not in _PIL_MODE.get((head.colour_type, head.bit_depth), ()):
        raise ValueError(f"{path}: {kind} is {head.describe()} PNG that PIL opens as mode {mode}, which this "
                         f"reader does not handle; {_SAVE_AS[kind]}")
    return arr


def _from_palette(path: Path, kind: str, head: _Header, index: np.ndarray) -> np.ndarray:
    """Gray values of a palette image whose colours in use are opaque gray; raises otherwise."""
    palette = head.palette if head.palette is not None else np.zeros((0, 3), np.uint8)
    used = np.unique(index)
    if used[-1] >= len(palette):
        raise ValueError(f"{path}: {kind} is {head.describe()} PNG that uses colour {used[-1]} "
                         f"of a palette of {len(palette)} colour(s)")
    alpha = np.full(len(palette), 255, np.uint8)
    trns = np.frombuffer(head.trns or b"", np.uint8)[: len(palette)]
    alpha[: len(trns)] = trns
    colour = used[(palette[used] != palette[used, :1]).any(axis=1)]
    if len(colour):
        example = tuple(palette[colour[0]].tolist())
        raise ValueError(f"{path}: {kind} is {head.describe()} PNG whose colours in use are not gray: "
                         f"{int(np.isin(index, colour).sum())} pixel(s), e.g. RGB {example}; {_SAVE_AS[kind]}")
    clear = used[alpha[used] != 255]
    if len(clear):
        raise ValueError(f"{path}: {kind} is {head.describe()} PNG with {int(np.isin(index, clear).sum())} "
                         f"transparent pixel(s); {_SAVE_AS[kind]}")
    return palette[:, 0][index]


def _gray(path: str | Path, kind: str, size: int | None) -> np.ndarray:
    """(H, W) gray samples: uint8 for bit depths up to 8 (scaled exactly, as PNG defines), uint16 for 16.

    kind ('image' or 'mask') only words the errors; `size` refuses another size before decoding.
    """
    path = Path(path)
    data = _read_bytes(path)
    head = _header(path, data, kind)
    if size is not None and (head.width, head.height) != (size, size):
        raise ValueError(f"{path}: expected {size}x{size} pixels, got {head.width}x{head.height}")
    if head.frames > 1:
        raise ValueError(f"{path}: {kind} is an animated PNG with {head.frames} frames; expected one picture")
    if head.bit_depth == 16 and head.colour_type != 0:
        raise ValueError(f"{path}: {kind} is {head.describe()} PNG, which PIL reads as 8-bit (keeping only "
                         f"the high byte of each sample), so it cannot be read exactly; {_SAVE_AS[kind]}")
    arr = _decode(path, data, head, kind)
    if head.colour_type == 3:
        return _from_palette(path, kind, head, arr)
    if arr.dtype == bool:  # 1-bit gray
        arr = arr.astype(np.uint8) * 255
    channels = arr.reshape(*arr.shape[:2], -1)
    if head.colour_type in (4, 6):
        channels, alpha = channels[..., :-1], channels[..., -1]
        if (alpha != 255).any():
            raise ValueError(f"{path}: {kind} is {head.describe()} PNG with {int((alpha != 255).sum())} "
                             f"transparent or translucent pixel(s); {_SAVE_AS[kind]}")
    if head.trns and head.colour_type in (0, 2):  # one colour declared transparent: refused if a pixel has it
        scale = 255 // (2**head.bit_depth - 1) if head.bit_depth <= 8 else 1
        key = np.frombuffer(head.trns[: 2 * channels.shape[-1]], ">u2").astype(np.int64) * scale
        clear = int((channels == key).all(axis=-1).sum())
        if clear:
            shown = key[0] if len(key) == 1 else tuple(key.tolist())
            raise ValueError(f"{path}: {kind} is {head.describe()} PNG with {clear} transparent pixel(s) "
                             f"(tRNS colour {shown}); {_SAVE_AS[kind]}")
    differ = int((channels != channels[..., :1]).any(axis=-1).sum())
    if differ:
        raise ValueError(f"{path}: {kind} is {head.describe()} PNG and its channels differ in {differ} pixel(s); "
                         f"the {kind} must be gray (R=G=B), as in the competition data")
    return channels[..., 0].astype(np.uint16 if head.bit_depth == 16 else np.uint8)


def read_image(path: str | Path, size: int | None = None) -> np.ndarray:
    """(H, W) uint8 gray image, exactly as stored; ValueError naming the file if it is not exact gray."""
    gray = _gray(path, "image", size)
    if gray.dtype == np.uint16:  # 8-bit v is stored as 257 * v in 16 bits; anything else has no 8-bit form
        inexact = int((gray % 257 != 0).sum())
        if inexact:
            raise ValueError(f"{path}: image is 16-bit gray with {inexact} pixel(s) whose value is not a multiple "
                             "of 257, so it has no exact 8-bit form; the model reads 8-bit gray")
        gray = (gray // 257).astype(np.uint8)
    return gray


def read_mask(path: str | Path, size: int | None = None) -> np.ndarray:
    """(H, W) uint8 mask in {0, 1}; raises if it is not gray or has values other than 0 and one positive value."""
    gray = _gray(path, "mask", size)
    values = np.unique(gray)
    if len(values) > 2 or (len(values) == 2 and values[0] != 0):
        raise ValueError(f"{path}: mask values must be 0 and one positive value, found {values[:6].tolist()}")
    return (gray > 0).astype(np.uint8)


def write_png(path: str | Path, arr: np.ndarray, mode: str | None = None) -> None:
    """Write `arr` as PNG; mode 'RGB' repeats a (H, W) uint8 array over three channels."""
    if mode == "RGB":
        arr = np.repeat(arr[..., None], 3, axis=2)
    Image.fromarray(arr).save(path)
