"""PNG reading, exact or refused: every PNG form that holds exact gray reads as it, everything else is
refused with a message that names the file and says what it is."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from saltnet.data.pngio import read_image, read_mask

GRAY = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10) * 2  # 0..238, every value distinct


def png_bytes(samples: np.ndarray, bit_depth: int, colour_type: int, palette=None, trns: bytes | None = None) -> bytes:
    """A PNG written by hand (https://www.w3.org/TR/png/): any colour type and bit depth, which PIL
    cannot all write (16-bit RGB, tRNS on gray). samples: (H, W) or (H, W, C) ints at `bit_depth`."""
    samples = np.asarray(samples)
    samples = samples[..., None] if samples.ndim == 2 else samples
    height, width, _ = samples.shape

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b""
    for row in samples.reshape(height, -1).astype(np.uint32):
        if bit_depth >= 8:
            packed = row.astype(">u2" if bit_depth == 16 else np.uint8).tobytes()
        else:  # several samples per byte, most significant first
            per = 8 // bit_depth
            row = np.concatenate([row, np.zeros(-len(row) % per, np.uint32)]).reshape(-1, per)
            packed = (row << (bit_depth * np.arange(per - 1, -1, -1))).sum(axis=1).astype(np.uint8).tobytes()
        rows += b"\x00" + packed  # filter type 0: none
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0))
    if palette is not None:
        out += chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes())
    if trns is not None:
        out += chunk(b"tRNS", trns)
    return out + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def permuted_palette(gray: np.ndarray) -> Image.Image:
    """A palette image of `gray` whose index differs from the gray value (reading indices would show)."""
    order = np.random.default_rng(0).permutation(256).astype(np.uint8)
    palette = np.zeros((256, 3), np.uint8)
    palette[order] = np.arange(256, dtype=np.uint8)[:, None]
    img = Image.frombytes("P", gray.shape[::-1], order[gray].tobytes())
    img.putpalette(palette.reshape(-1).tolist())
    return img


def save(path: Path, img_or_bytes) -> Path:
    if isinstance(img_or_bytes, bytes):
        path.write_bytes(img_or_bytes)
    else:
        img_or_bytes.save(path)
    return path


# --- exact conversions: every form reads as the same 8-bit gray ------------------------------------

EXACT_IMAGES = {
    "8-bit gray": lambda: Image.fromarray(GRAY),
    "RGB with R=G=B (the competition's form)": lambda: Image.fromarray(np.repeat(GRAY[..., None], 3, axis=2)),
    "RGBA with R=G=B, opaque": lambda: Image.fromarray(np.dstack([GRAY] * 3 + [np.full_like(GRAY, 255)])),
    "gray+alpha, opaque": lambda: Image.fromarray(np.dstack([GRAY, np.full_like(GRAY, 255)])),
    "palette of gray colours, indices not the values": lambda: permuted_palette(GRAY),
    "16-bit gray, multiples of 257": lambda: Image.fromarray(GRAY.astype(np.uint16) * 257),
    "gray with a tRNS colour no pixel has": lambda: png_bytes(GRAY, 8, 0, trns=struct.pack(">H", 1)),
}


@pytest.mark.parametrize("form", sorted(EXACT_IMAGES))
def test_exact_forms_read_as_the_gray_values(form, tmp_path):
    arr = read_image(save(tmp_path / "x.png", EXACT_IMAGES[form]()))
    assert arr.dtype == np.uint8 and np.array_equal(arr, GRAY)


def test_palette_image_is_read_as_gray_values_not_indices(tmp_path):
    img = permuted_palette(GRAY)
    assert not np.array_equal(np.asarray(img), GRAY)  # the indices differ from the values
    assert np.array_equal(read_image(save(tmp_path / "p.png", img)), GRAY)


def test_low_bit_depth_gray_is_scaled_as_png_defines(tmp_path):
    """1-, 2- and 4-bit gray v means v * 255 / (2^depth - 1): exact in 8 bits."""
    for depth in (1, 2, 4):
        top = 2**depth - 1
        samples = np.arange(12 * 10).reshape(12, 10) % (top + 1)
        arr = read_image(save(tmp_path / f"g{depth}.png", png_bytes(samples, depth, 0)))
        assert np.array_equal(arr, samples * (255 // top))


SALT = np.zeros((12, 10), bool)
SALT[3:9, 2:7] = True

EXACT_MASKS = {
    "16-bit {0, 65535} (the competition's form)": lambda: Image.fromarray(SALT.astype(np.uint16) * 65535),
    "8-bit {0, 255}": lambda: Image.fromarray(SALT.astype(np.uint8) * 255),
    "8-bit {0, 1}": lambda: Image.fromarray(SALT.astype(np.uint8)),
    "1-bit": lambda: Image.fromarray(SALT),
    "gray palette": lambda: permuted_palette(SALT.astype(np.uint8) * 255),
    "RGB with R=G=B": lambda: Image.fromarray(np.repeat(SALT[..., None].astype(np.uint8) * 255, 3, axis=2)),
}


@pytest.mark.parametrize("form", sorted(EXACT_MASKS))
def test_mask_forms_read_as_0_1(form, tmp_path):
    arr = read_mask(save(tmp_path / "m.png", EXACT_MASKS[form]()))
    assert np.array_equal(arr, SALT.astype(np.uint8))


def test_empty_mask_reads_as_zeros(tmp_path):
    arr = read_mask(save(tmp_path / "m.png", Image.fromarray(np.zeros((12, 10), np.uint8))))
    assert not arr.any()


# --- refused: the message names the file and says what it is ---------------------------------------

def encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(GRAY).save(buf, fmt)
    return buf.getvalue()


def apng() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(GRAY).save(buf, "PNG", save_all=True, append_images=[Image.fromarray(255 - GRAY)])
    return buf.getvalue()


COLOURED = np.dstack([GRAY, GRAY, GRAY // 2])
CHECKER = np.arange(120).reshape(12, 10)
REFUSED = {
    "JPEG renamed .png": (lambda: encoded("JPEG"), ["is a JPEG file, not a PNG", "lossy"]),
    "BMP renamed .png": (lambda: encoded("BMP"), ["is a BMP file, not a PNG"]),
    "RGB whose channels differ": (lambda: Image.fromarray(COLOURED), ["8-bit RGB", "channels differ in 119 pixel(s)"]),
    "16-bit RGB": (lambda: png_bytes(np.repeat(GRAY[..., None], 3, axis=2).astype(np.uint16) * 257, 16, 2),
                   ["16-bit RGB", "high byte"]),
    "16-bit RGBA": (lambda: png_bytes(np.dstack([GRAY] * 4).astype(np.uint16) * 257, 16, 6), ["16-bit RGBA"]),
    "palette with a colour": (lambda: png_bytes(CHECKER % 2, 1, 3, palette=[[0, 0, 0], [255, 0, 0]]),
                              ["1-bit palette", "not gray", "(255, 0, 0)"]),
    "palette index past the palette": (lambda: png_bytes(CHECKER % 4, 2, 3, palette=[[0] * 3, [9] * 3]),
                                       ["2-bit palette", "palette of 2 colour(s)"]),
    "RGBA with transparent pixels": (lambda: Image.fromarray(np.dstack([GRAY] * 3 + [np.full_like(GRAY, 128)])),
                                     ["8-bit RGBA", "120 transparent"]),
    "gray with a tRNS colour in use": (lambda: png_bytes(GRAY, 8, 0, trns=struct.pack(">H", 4)),
                                       ["8-bit gray", "1 transparent pixel"]),
    "animated PNG": (apng, ["animated PNG with 2 frames"]),
    "empty file": (lambda: b"", ["not a readable PNG", "empty"]),
    "text file": (lambda: b"id,rle_mask\n", ["not a readable PNG"]),
    "truncated": (lambda: png_bytes(GRAY, 8, 0)[:60], ["not a readable PNG"]),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
@pytest.mark.parametrize("reader", [read_image, read_mask], ids=["image", "mask"])
def test_refused_with_file_and_reason(reader, case, tmp_path):
    make, fragments = REFUSED[case]
    path = save(tmp_path / "bad.png", make())
    with pytest.raises(ValueError) as info:
        reader(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, message


def test_mask_with_salt_in_one_channel_is_a_mask_problem(tmp_path):
    rgb = np.zeros((12, 10, 3), np.uint8)
    rgb[..., 1] = SALT * 255  # salt in green only: the red channel alone would read as an empty mask
    with pytest.raises(ValueError, match="mask is an 8-bit RGB PNG and its channels differ in 30 pixel"):
        read_mask(save(tmp_path / "m.png", Image.fromarray(rgb)))


def test_16_bit_image_without_an_exact_8_bit_form(tmp_path):
    path = save(tmp_path / "i.png", Image.fromarray(GRAY.astype(np.uint16) * 257 + (GRAY == 4)))
    with pytest.raises(ValueError, match="image is 16-bit gray with 1 pixel.s. whose value is not a multiple of 257"):
        read_image(path)
    assert read_mask(save(tmp_path / "m.png", Image.fromarray(SALT.astype(np.uint16) * 3))).sum() == SALT.sum()


def test_other_size_refused_from_the_header(tmp_path):
    path = save(tmp_path / "big.png", Image.fromarray(np.zeros((128, 100), np.uint8)))
    with pytest.raises(ValueError, match="expected 101x101 pixels, got 100x128"):
        read_image(path, size=101)


def test_broken_link_and_folder(tmp_path):
    link = tmp_path / "link.png"
    link.symlink_to(tmp_path / "gone.png")
    with pytest.raises(ValueError, match="broken symbolic link"):
        read_image(link)
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ValueError, match="dir.png: cannot be read"):
        read_image(tmp_path / "dir.png")
