"""The competition download as the Kaggle CLI delivers it (`kaggle competitions download -c
tgs-salt-identification-challenge`): one zip holding train.zip (images/, masks/), test.zip (images/) and
the CSVs, or the folder where that zip was unpacked, with train.zip and test.zip still zipped. Unpacked
into the pipeline's own folder (rule unpack_data: results/data/), never inside the user's.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from saltnet.data.pack import TABLES, DataError

__all__ = ["is_kaggle_download", "kaggle_sources", "unpack_kaggle"]

INNER = {"train.zip": "train", "test.zip": "test"}


def is_kaggle_download(path: str | Path) -> bool:
    """A zip file, or a folder with train.zip and no train/images: what unpack_kaggle takes."""
    path = Path(path)
    if path.is_file():
        return zipfile.is_zipfile(path)
    return path.is_dir() and (path / "train.zip").is_file() and not (path / "train/images").is_dir()


def kaggle_sources(path: str | Path) -> list[str]:
    """The files of a Kaggle download that unpacking reads (the inputs of rule unpack_data)."""
    path = Path(path)
    return [str(path)] if path.is_file() else [str(found) for found in _members(path).values()]


def _safe_parts(name: str, source: str) -> tuple[str, ...]:
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
        raise DataError(f"{source}: member {name!r} points outside the folder; not unpacked")
    return parts


def _extract_inner(archive: zipfile.ZipFile, source: str, target: Path) -> int:
    """The PNGs of train.zip or test.zip into target/{images,masks}/ (a leading train/ or test/ folder in
    the zip is dropped); returns how many."""
    count = 0
    for member in archive.infolist():
        parts = _safe_parts(member.filename, source)
        if member.is_dir() or not parts[-1].lower().endswith(".png"):
            continue
        if parts[0] in ("train", "test"):
            parts = parts[1:]
        if len(parts) != 2 or parts[0] not in ("images", "masks"):
            raise DataError(f"{source}: member {member.filename!r} is not images/<id>.png or masks/<id>.png")
        out = target.joinpath(*parts)
        out.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(member) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
        count += 1
    return count


def _members(path: Path) -> dict[str, bytes | Path]:
    """{name: the bytes of train.zip / test.zip / a CSV, or its path}, from the outer zip or the folder."""
    if path.is_dir():
        return {name: path / name for name in (*INNER, *TABLES) if (path / name).is_file()}
    found: dict[str, bytes | Path] = {}
    with zipfile.ZipFile(path) as outer:
        for member in outer.infolist():
            name = _safe_parts(member.filename, str(path))[-1]
            if name in INNER or name in TABLES:
                found[name] = outer.read(member)
    return found


def unpack_kaggle(source: str | Path, out: str | Path) -> Path:
    """Unpack a Kaggle download (zip or folder, see the module) into `out` in the competition layout
    (train.csv, depths.csv, sample_submission.csv, train/images, train/masks, test/images). Raises
    DataError naming what is missing; `out` appears only complete."""
    source, out = Path(source), Path(out)
    try:
        members = _members(source)
    except zipfile.BadZipFile as err:
        raise DataError(f"{source}: not a readable zip ({err}); download it again") from None
    missing = [name for name in ("train.zip", "test.zip", "train.csv", "sample_submission.csv") if name not in members]
    if missing:
        raise DataError(f"{source}: a Kaggle download of the competition holds train.zip, test.zip, train.csv and "
                        f"sample_submission.csv; {', '.join(missing)} not found")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, content in members.items():
            if name in TABLES:
                (work / name).write_bytes(content if isinstance(content, bytes) else Path(content).read_bytes())
                continue
            raw = io.BytesIO(content) if isinstance(content, bytes) else open(content, "rb")
            with raw, zipfile.ZipFile(raw) as inner:
                if _extract_inner(inner, f"{source}:{name}", work / INNER[name]) == 0:
                    raise DataError(f"{source}: {name} holds no PNG")
        work.rename(out)
    except zipfile.BadZipFile as err:
        raise DataError(f"{source}: a zip inside it is not readable ({err}); download it again") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out
