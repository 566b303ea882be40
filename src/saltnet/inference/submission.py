"""Submission: RLE of the final masks, validate against sample_submission.csv, write id,rle_mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from saltnet.data.rle import rle_decode, rle_encode
from saltnet.runtime.atomic import atomic_path

__all__ = ["SubmissionError", "build_submission", "validate_submission", "write_submission_csv"]


class SubmissionError(ValueError):
    """The submission would not be accepted; the message says why."""


def build_submission(ids: np.ndarray, masks: np.ndarray) -> pd.DataFrame:
    """ids (N,), masks (N, H, W) bool (post-processed) -> DataFrame id, rle_mask ('' for an empty mask)."""
    return pd.DataFrame({"id": [str(i) for i in ids], "rle_mask": [rle_encode(m) for m in masks]})


def validate_submission(sub: pd.DataFrame, sample_ids: list[str], shape: tuple[int, int] = (101, 101)) -> None:
    """Raise SubmissionError unless every sample id appears exactly once with a well-formed RLE."""
    if list(sub.columns) != ["id", "rle_mask"]:
        raise SubmissionError(f"columns must be ['id', 'rle_mask'], got {list(sub.columns)}")
    duplicated = sub["id"][sub["id"].duplicated()].tolist()
    if duplicated:
        raise SubmissionError(f"duplicate ids in submission: {duplicated[:5]}")
    missing, extra = set(sample_ids) - set(sub["id"]), set(sub["id"]) - set(sample_ids)
    if missing or extra:
        raise SubmissionError(f"ids differ from sample_submission: {len(missing)} missing "
                              f"{sorted(missing)[:5]}, {len(extra)} unexpected {sorted(extra)[:5]}")
    for row_id, rle in zip(sub["id"], sub["rle_mask"]):
        try:
            rle_decode(rle, shape)
        except ValueError as err:
            raise SubmissionError(f"rle_mask of id {row_id}: {err}") from err


def write_submission_csv(sub: pd.DataFrame, path: str | Path) -> None:
    """Write with an empty field for empty masks (pandas writes '' as an empty field)."""
    with atomic_path(path) as tmp:
        sub.to_csv(tmp, index=False)
