"""Fold ensemble: the mean of the folds' probabilities, in bounded memory.

The blog sums TTA logits over folds and scales by 2/K; we average probabilities instead, which
keeps the ensemble a probability and the submission threshold meaningful.

`write_fold_mean` reads every fold's `probs` array a chunk of images at a time straight from its .npz
(the .npy member is streamed, never loaded whole) and writes the mean the same way, so its memory is
a few chunks whatever the number of test images and folds (18,000 images and 10 folds: see
`python -m saltnet.performance.ensemble_memory`). Per pixel it computes what `mean_fold_probs` does
(float32 sum over the folds in order, divided by their number, then float16), so both agree exactly.
"""

from __future__ import annotations

import contextlib
import zipfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from saltnet.runtime.atomic import write_npz_chunked

__all__ = ["mean_fold_probs", "write_fold_mean", "CHUNK_IMAGES"]

CHUNK_IMAGES = 512  # images per chunk: the float32 sum of one chunk of 101x101 maps is 21 MB


def mean_fold_probs(paths: Iterable[str | Path]) -> tuple[np.ndarray, np.ndarray]:
    """paths: fold .npz files with ids (N,) and probs (N, H, W) -> (ids, mean probs float16), all in memory."""
    total, ids, count = None, None, 0
    for path in paths:
        with np.load(path, allow_pickle=False) as npz:
            fold_ids, probs = npz["ids"], npz["probs"]
        if ids is None:
            ids, total = fold_ids, np.zeros(probs.shape, dtype=np.float32)
        elif not np.array_equal(ids, fold_ids):
            raise ValueError(f"{path}: ids differ from the first fold's; folds must predict the same images")
        total += probs
        count += 1
    if count == 0:
        raise ValueError("no fold predictions to ensemble")
    return ids, (total / count).astype(np.float16)


class _NpyStream:
    """An array member of an .npz read a chunk of leading-axis rows at a time: shape, dtype, chunks()."""

    def __init__(self, archive: zipfile.ZipFile, key: str, path: Path):
        try:
            self.handle = archive.open(f"{key}.npy")
        except KeyError:
            raise ValueError(f"{path}: no array {key!r}") from None
        version = np.lib.format.read_magic(self.handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        self.shape, fortran, self.dtype = read_header(self.handle)
        if fortran or self.dtype.hasobject:
            raise ValueError(f"{path}: array {key!r} is not a plain C-ordered array")
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def read(self, rows: int) -> np.ndarray:
        data = self.handle.read(rows * self.row_bytes)
        if len(data) != rows * self.row_bytes:
            raise ValueError(f"{self.handle.name}: ended early (truncated file?)")
        return np.frombuffer(data, dtype=self.dtype).reshape(rows, *self.shape[1:])


def _chunks(n: int, size: int) -> Iterator[int]:
    for start in range(0, n, size):
        yield min(size, n - start)


def write_fold_mean(paths: Iterable[str | Path], out: str | Path, chunk: int = CHUNK_IMAGES) -> int:
    """The mean of the folds' probs (as mean_fold_probs computes it) written to `out` (.npz with ids and
    probs float16, atomically), a chunk of images at a time; returns the number of folds."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no fold predictions to ensemble")
    with contextlib.ExitStack() as stack:
        streams, ids = [], None
        for path in paths:
            archive = stack.enter_context(zipfile.ZipFile(path))
            with archive.open("ids.npy") as member:  # the ids alone: small
                fold_ids = np.lib.format.read_array(member, allow_pickle=False)
            if ids is None:
                ids = fold_ids
            elif not np.array_equal(ids, fold_ids):
                raise ValueError(f"{path}: ids differ from the first fold's; folds must predict the same images")
            stream = _NpyStream(archive, "probs", path)
            stack.callback(stream.handle.close)
            if stream.shape[0] != len(ids) or (streams and stream.shape != streams[0].shape):
                raise ValueError(f"{path}: probs of shape {stream.shape} do not fit {len(ids)} ids of the first fold")
            streams.append(stream)
        shape = streams[0].shape

        def means():
            for rows in _chunks(shape[0], chunk):
                total = np.zeros((rows, *shape[1:]), dtype=np.float32)
                for stream in streams:
                    total += stream.read(rows)
                yield (total / len(streams)).astype(np.float16)

        write_npz_chunked(out, ids, shape, np.float16, means())
    return len(paths)
