"""Read and check the competition layout once, and pack it into arrays so no epoch decodes PNGs.

Layout: train.csv (id, rle_mask), depths.csv (id, z; optional), sample_submission.csv (id, ...),
train/images/<id>.png, train/masks/<id>.png, test/images/<id>.png.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from saltnet.data.pngio import read_image, read_mask
from saltnet.data.rle import rle_decode

__all__ = ["TABLES", "DataError", "PackedData", "pack_competition", "load_packed"]

TABLES = ("train.csv", "sample_submission.csv", "depths.csv")  # the CSVs of the competition's download

log = logging.getLogger(__name__)
_MAX_LISTED = 5  # problems listed per kind before "... and N more"
# First bytes of the compressed files a CSV may arrive as (the pipeline reads plain text only).
_COMPRESSED = {b"\x1f\x8b": "gzip-compressed", b"PK\x03\x04": "a zip archive (or an Excel workbook)",
               b"BZh": "bzip2-compressed", b"\xfd7zXZ\x00": "xz-compressed", b"\x28\xb5\x2f\xfd": "zstd-compressed",
               b"7z\xbc\xaf\x27\x1c": "a 7-Zip archive"}
_BOMS = {codecs.BOM_UTF32_LE: "UTF-32", codecs.BOM_UTF32_BE: "UTF-32",  # UTF-32 first: its LE BOM starts like UTF-16's
         codecs.BOM_UTF16_LE: "UTF-16", codecs.BOM_UTF16_BE: "UTF-16"}
# Suffixes of the image formats PIL can open (.jpg, .tif, .bmp, ...): such a file in an image folder is a mistake.
_IMAGE_SUFFIXES = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


class DataError(ValueError):
    """The competition data is not in the expected layout; the message names files and ids."""


@dataclass
class PackedData:
    """ids: (N,) str; images: (N, H, W) uint8; masks: (N, H, W) uint8 in {0,1} or None (test)."""

    ids: np.ndarray
    images: np.ndarray
    masks: np.ndarray | None = None


def _listing(items: list) -> str:
    shown = ", ".join(map(str, items[:_MAX_LISTED]))
    return shown + (f" ... and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def _ids(ids: list[str]) -> str:
    """Ids as repr, so a trailing space or an invisible character shows."""
    return _listing([repr(i) for i in ids])


def _absent(path: Path) -> str:
    """Why `path` is not there: 'does not exist' or 'is a broken symbolic link (to ...)'."""
    if path.is_symlink():
        return f"is a broken symbolic link (to {os.readlink(path)!r}, which does not exist)"
    return "does not exist" + ("" if path.is_absolute() else f" (looked for {path.absolute()})")


def _csv_text(path: Path, columns: list[str]) -> str:
    """The decoded text of a CSV file; DataError for a file that is empty, compressed or not UTF-8."""
    if not path.is_file():
        raise DataError(f"{path} is not a file" if path.exists() else f"{path} {_absent(path)}")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path} cannot be read ({err.strerror or err})") from err
    if not data.strip():
        raise DataError(f"{path} is empty; expected a header line ({','.join(columns)}) and one row per id")
    for magic, kind in _COMPRESSED.items():
        if data.startswith(magic):
            fix = "export it as CSV" if kind.startswith("a zip") else "decompress it"
            raise DataError(f"{path} is {kind}, not CSV text; {fix} (the pipeline reads plain CSV)")
    for bom, encoding in _BOMS.items():
        if data.startswith(bom):
            raise DataError(f"{path} is {encoding} text; save it as UTF-8 (or plain ASCII) CSV")
    if b"\x00" in data:
        raise DataError(f"{path} contains NUL bytes, so it is binary or UTF-16/32 text; save it as UTF-8 CSV")
    try:
        return data.decode("utf-8-sig")  # a UTF-8 byte-order mark (Excel's "CSV UTF-8") is fine
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); "
                        "save it as UTF-8 CSV") from err


def _read_csv(path: Path, columns: list[str], need_rows: bool = True) -> pd.DataFrame:
    """Every field as str; DataError naming the file for anything but a plain CSV with `columns` and an id per row."""
    reader = csv.reader(io.StringIO(_csv_text(path, columns), newline=""), strict=True)
    try:  # blank lines are skipped, as pandas does
        rows = [(reader.line_num, row) for row in reader if row and row != [""]]
    except csv.Error as err:
        raise DataError(f"{path} cannot be parsed as CSV (line {reader.line_num}: {err})") from err
    header = rows[0][1] if rows else []
    absent = [c for c in columns if c not in header]
    if absent:
        raise DataError(f"{path}: missing column(s) {absent}; found {header}{_header_hint(header, columns)}")
    if len(set(header)) < len(header):
        raise DataError(f"{path}: the header names a column twice: {header}")
    ragged = [(line, len(row)) for line, row in rows[1:] if len(row) != len(header)]
    if ragged:
        raise DataError(f"{path}: {len(ragged)} line(s) have another number of fields than the header's "
                        f"{len(header)} ({','.join(header)}): " + _listing([f"line {n} has {k}" for n, k in ragged]))
    frame = pd.DataFrame([row for _, row in rows[1:]], columns=header, dtype=str)
    if need_rows and frame.empty:
        raise DataError(f"{path} has a header but no rows")
    _check_ids(frame["id"].tolist(), path)
    duplicated = frame["id"][frame["id"].duplicated()].unique().tolist()
    if duplicated:
        raise DataError(f"{path}: duplicate ids {_ids(duplicated)}")
    return frame


def _header_hint(header: list[str], columns: list[str]) -> str:
    if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
        return " (is it separated by semicolons or tabs? the pipeline reads comma-separated CSV)"
    if all(c in [h.strip().lower() for h in header] for c in columns):
        return " (column names must be exactly these, lower-case and without spaces)"
    return ""


def _id_problem(sample_id: str) -> str | None:
    """Why `sample_id` cannot be a file name <id>.png, or None."""
    if not sample_id:
        return "empty"
    if sample_id != sample_id.strip():
        return "leading or trailing whitespace"
    if not sample_id.isprintable():
        return "an invisible or control character"
    if "/" in sample_id or "\\" in sample_id:
        return "a path separator"
    if sample_id.lower().endswith(".png"):
        return "ends in .png: ids are file names without the extension"
    return None


def _check_ids(ids: list[str], table: Path) -> None:
    bad = [(i, why) for i in ids if (why := _id_problem(i))]
    if bad:
        raise DataError(f"{table}: {len(bad)} id(s) cannot be image file names: "
                        + _listing([f"{i!r} ({why})" for i, why in bad]))


def _looks_like_image(path: Path) -> bool:
    if path.suffix.lower() in _IMAGE_SUFFIXES:
        return True
    try:
        with Image.open(path):  # reads the header only
            return True
    except Exception:  # not an image PIL knows
        return False


def _png_ids(folder: Path) -> set[str]:
    """Ids of the <id>.png files in `folder`; DataError for a broken link or an image under another name."""
    if not folder.is_dir():
        raise DataError(f"folder {folder} {_absent(folder)}" if not folder.exists() else f"{folder} is not a folder")
    ids, broken, misnamed = set(), [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):  # hidden files (.DS_Store, macOS ._<id>.png) are not data
            continue
        if path.suffix == ".png":
            if path.is_symlink() and not path.exists():
                broken.append(f"{path.name} -> {os.readlink(path)}")
            else:
                ids.add(path.stem)
        elif path.suffix.strip().lower() == ".png":
            misnamed.append(f"{path.name!r} (rename it to {path.stem.strip()}.png: the extension is lower-case .png)")
        elif path.is_file() and _looks_like_image(path):
            misnamed.append(f"{path.name!r} (not a .png file: convert it to PNG, or remove it)")
    if broken:
        raise DataError(f"{len(broken)} broken symbolic link(s) in {folder}, pointing to files that do not exist: "
                        + _listing(broken))
    if misnamed:
        raise DataError(f"{len(misnamed)} image file(s) in {folder} are not named <id>.png, so the pipeline would "
                        "not read them: " + _listing(misnamed))
    return ids


def _check_same_ids(listed: list[str], present: set[str], table: Path, folder: Path) -> None:
    missing = sorted(set(listed) - present)
    if missing:
        raise DataError(f"{len(missing)} id(s) in {table} have no PNG in {folder}: {_ids(missing)}")
    extra = sorted(present - set(listed))
    if extra:
        raise DataError(f"{len(extra)} PNG(s) in {folder} have no row in {table}: {_ids(extra)}")


def _check_no_leak(train_ids: list[str], test_ids: list[str], train_csv: Path, sample_csv: Path) -> None:
    both = sorted(set(train_ids) & set(test_ids))
    if both:
        raise DataError(f"{len(both)} id(s) are both training ids in {train_csv} and test ids in {sample_csv}: "
                        f"{_ids(both)}; a test image that is also in the training set leaks its answer, "
                        "so remove it from one of the two")


def _read_stack(paths: list[Path], reader, size: int) -> np.ndarray:
    out = np.empty((len(paths), size, size), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            arr = reader(path, size)
        except ValueError as err:  # not exact gray, unreadable, wrong size, bad mask values; names the file
            raise DataError(str(err)) from err
        if arr.shape != (size, size):
            raise DataError(f"{path}: expected {size}x{size} pixels, got {arr.shape[1]}x{arr.shape[0]}")
        out[i] = arr
    return out


def _check_rle(frame: pd.DataFrame, masks: np.ndarray, table: Path, mask_dir: Path) -> None:
    size = masks.shape[1:]
    for (row_id, rle), mask in zip(frame[["id", "rle_mask"]].itertuples(index=False), masks):
        try:
            decoded = rle_decode(rle, size)
        except ValueError as err:
            raise DataError(f"{table}: rle_mask of id {row_id!r} is malformed: {err}") from err
        differ = int((decoded != mask.astype(bool)).sum())
        if differ:
            raise DataError(
                f"{table}: rle_mask of id {row_id!r} disagrees with {mask_dir / (row_id + '.png')} "
                f"in {differ} pixel(s); the pipeline trains on the mask PNG, so fix or remove the row"
            )


def _check_depths(path: Path, ids: list[str]) -> None:
    """Warnings only: no model in this pipeline reads depth, so an absent or broken depths.csv stops nothing."""
    if not path.is_file() and not path.is_symlink():
        log.warning("%s is missing: fine, no model in this pipeline uses depth", path)
        return
    try:
        depths = _read_csv(path, ["id", "z"], need_rows=False)
    except DataError as err:
        log.warning("%s; ignored: no model in this pipeline uses depth", err)
        return
    missing = sorted(set(ids) - set(depths["id"]))
    if missing:
        log.warning("%s has no depth for %d id(s): %s (no model uses depth)", path, len(missing), _ids(missing))


def pack_competition(data_dir: str | Path, size: int = 101) -> tuple[PackedData, PackedData]:
    """Check the layout under `data_dir` and read it -> (train, test). Raises DataError."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"data folder {root} {_absent(root)}" if not root.exists() else f"data folder {root} is a file")
    train_csv, sample_csv = root / "train.csv", root / "sample_submission.csv"
    train = _read_csv(train_csv, ["id", "rle_mask"])
    sample = _read_csv(sample_csv, ["id"])
    img_dir, mask_dir, test_dir = root / "train/images", root / "train/masks", root / "test/images"
    train_ids, test_ids = train["id"].tolist(), sample["id"].tolist()
    _check_no_leak(train_ids, test_ids, train_csv, sample_csv)
    _check_same_ids(train_ids, _png_ids(img_dir), train_csv, img_dir)
    _check_same_ids(train_ids, _png_ids(mask_dir), train_csv, mask_dir)
    test_present = _png_ids(test_dir)
    if not test_present:
        raise DataError(f"test folder {test_dir} has no PNG images")
    _check_same_ids(test_ids, test_present, sample_csv, test_dir)
    _check_depths(root / "depths.csv", train_ids + test_ids)
    images = _read_stack([img_dir / f"{i}.png" for i in train_ids], read_image, size)
    masks = _read_stack([mask_dir / f"{i}.png" for i in train_ids], read_mask, size)
    _check_rle(train, masks, train_csv, mask_dir)
    test_images = _read_stack([test_dir / f"{i}.png" for i in test_ids], read_image, size)
    return PackedData(np.array(train_ids), images, masks), PackedData(np.array(test_ids), test_images)


def load_packed(path: str | Path) -> PackedData:
    """Read a packed .npz written by the pack step (no pickles)."""
    with np.load(path, allow_pickle=False) as npz:
        masks = npz["masks"] if "masks" in npz.files else None
        return PackedData(npz["ids"], npz["images"], masks)
