"""Read and check the competition layout once, and pack it into arrays so no epoch decodes PNGs.

Layout: train.csv (id, rle_mask), depths.csv (id, z; optional), sample_submission.csv (id, ...),
train/images/<id>.png, train/masks/<id>.png, test/images/<id>.png.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .pngio import read_image, read_mask
from .rle import rle_decode

__all__ = ["DataError", "PackedData", "pack_competition", "load_packed"]

log = logging.getLogger(__name__)
_MAX_LISTED = 5  # problems listed per kind before "... and N more"


class DataError(ValueError):
    """The competition data is not in the expected layout; the message names files and ids."""


@dataclass
class PackedData:
    """ids: (N,) str; images: (N, H, W) uint8; masks: (N, H, W) uint8 in {0,1} or None (test)."""

    ids: np.ndarray
    images: np.ndarray
    masks: np.ndarray | None = None


def _listing(items: list[str]) -> str:
    shown = ", ".join(map(str, items[:_MAX_LISTED]))
    return shown + (f" ... and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path} is missing")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise DataError(f"{path}: missing column(s) {absent}; found {list(frame.columns)}")
    duplicated = frame["id"][frame["id"].duplicated()].unique().tolist()
    if duplicated:
        raise DataError(f"{path}: duplicate ids {_listing(duplicated)}")
    return frame


def _png_ids(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.png")} if folder.is_dir() else set()


def _check_same_ids(listed: list[str], present: set[str], table: Path, folder: Path) -> None:
    missing = sorted(set(listed) - present)
    if missing:
        raise DataError(f"{len(missing)} id(s) in {table} have no PNG in {folder}: {_listing(missing)}")
    extra = sorted(present - set(listed))
    if extra:
        raise DataError(f"{len(extra)} PNG(s) in {folder} have no row in {table}: {_listing(extra)}")


def _read_stack(paths: list[Path], reader, size: int) -> np.ndarray:
    out = np.empty((len(paths), size, size), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            arr = reader(path)
        except ValueError as err:  # unreadable PNG or bad mask values; the message names the file
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
            raise DataError(f"{table}: rle_mask of id {row_id} is malformed: {err}") from err
        differ = int((decoded != mask.astype(bool)).sum())
        if differ:
            raise DataError(
                f"{table}: rle_mask of id {row_id} disagrees with {mask_dir / (row_id + '.png')} "
                f"in {differ} pixel(s); the pipeline trains on the mask PNG, so fix or remove the row"
            )


def _check_depths(path: Path, ids: list[str]) -> None:
    if not path.is_file():
        log.warning("%s is missing: fine, no model in this pipeline uses depth", path)
        return
    depths = _read_csv(path, ["id", "z"])
    missing = sorted(set(ids) - set(depths["id"]))
    if missing:
        log.warning("%s has no depth for %d id(s): %s (no model uses depth)", path, len(missing), _listing(missing))


def pack_competition(data_dir: str | Path, size: int = 101) -> tuple[PackedData, PackedData]:
    """Check the layout under `data_dir` and read it -> (train, test). Raises DataError."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist")
    train_csv, sample_csv = root / "train.csv", root / "sample_submission.csv"
    train = _read_csv(train_csv, ["id", "rle_mask"])
    sample = _read_csv(sample_csv, ["id"])
    img_dir, mask_dir, test_dir = root / "train/images", root / "train/masks", root / "test/images"
    train_ids, test_ids = train["id"].tolist(), sample["id"].tolist()
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
