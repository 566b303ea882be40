"""Write outputs under a temporary name and rename them into place when complete.

An interrupted job then never leaves a file that looks finished (os.replace is atomic on POSIX).
The finished file gets the mode a plain open() would give it (0o666 less the umask), not mkstemp's
0600, so a team sharing results/ can read it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

__all__ = ["DiskFullError", "atomic_path", "write_json", "write_parquet", "write_npz", "write_npz_chunked",
           "write_text"]

_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class DiskFullError(OSError):
    """An output could not be written for want of space; the message names the folder and what is free."""

    def __str__(self) -> str:
        return self.strerror


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask sets it to read it)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it to `path` (mode 0o666 & ~umask), on error
    delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # the writer may have replaced the file; chmod what is there now
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        # torch.save reports a failed write as RuntimeError without an errno: a full disk if little is free
        full = err.errno in _FULL if isinstance(err, OSError) else shutil.disk_usage(path.parent).free < 2**24
        if not full:
            raise
        tmp.unlink(missing_ok=True)
        free = shutil.disk_usage(path.parent).free / 2**20
        code = err.errno if isinstance(err, OSError) and err.errno else errno.ENOSPC
        raise DiskFullError(code, f"{path.parent}: no space left to write {path.name} ({free:.1f} MB free "
                                  f"there; {os.strerror(code)}); nothing was written. Free space in that folder, "
                                  "then run the same command again") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_parquet(path: str | Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_npz_chunked(path: str | Path, ids: np.ndarray, shape: tuple, dtype, chunks: Iterable[np.ndarray]) -> None:
    """An uncompressed .npz of `ids` and `probs` (shape, dtype) written atomically, `probs` from `chunks` along its
    first axis, so the whole array is never in memory; np.load reads it like write_npz's."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as target:
        with target.open("ids.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array(member, ids, allow_pickle=False)
        with target.open("probs.npy", "w", force_zip64=True) as member:
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                      "shape": tuple(shape)}
            np.lib.format.write_array_header_2_0(member, header)
            for chunk in chunks:
                member.write(np.ascontiguousarray(chunk, dtype=dtype).tobytes())
                del chunk  # not kept while the next one is made


def write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """Uncompressed .npz written atomically (np.savez would append '.npz' to a bare temp name)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
