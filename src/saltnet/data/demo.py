"""A small synthetic data set in the exact competition layout, with the real data's quirks.

Images look like seismic sections: tilted, warped sedimentary layers with noise; salt bodies are
smooth blobs or domes rising from the bottom, with a chaotic low-contrast interior and a bright
top reflector, so a U-Net can learn them. Quirks copied from the real data: 101x101 RGB PNGs with
R=G=B, 16-bit {0, 65535} masks when non-empty and 8-bit when empty, some blank images, an empty
rle_mask for an empty mask, sample_submission.csv listing the test ids.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from saltnet.data.pngio import write_png
from saltnet.data.rle import rle_encode

__all__ = ["make_demo_data", "check_demo_folder", "MANIFEST"]

MANIFEST = ".saltnet-demo.json"  # what make_demo_data wrote: relative path -> sha1 of the bytes
_NOT_DATA = {MANIFEST, ".snakemake_timestamp"}  # Snakemake stamps the directory outputs it made

SIZE = 101


def _smooth_noise(rng: np.random.Generator, coarse: int) -> np.ndarray:
    """(SIZE, SIZE) float32 smooth field in about [-1, 1], from a coarse grid upsampled bicubically."""
    grid = rng.standard_normal((coarse, coarse)).astype(np.float32)
    field = np.asarray(Image.fromarray(grid, mode="F").resize((SIZE, SIZE), Image.BICUBIC))
    return field / (np.abs(field).max() + 1e-6)


def _salt_mask(rng: np.random.Generator, kind: str) -> np.ndarray:
    """(SIZE, SIZE) bool salt body of `kind` in {'empty', 'full', 'blob', 'dome'}."""
    if kind == "empty":
        return np.zeros((SIZE, SIZE), dtype=bool)
    if kind == "full":
        return np.ones((SIZE, SIZE), dtype=bool)
    if kind == "blob":
        return _smooth_noise(rng, coarse=int(rng.integers(3, 6))) > rng.uniform(0.1, 0.5)
    x = np.linspace(0, 1, SIZE)
    top = rng.uniform(0.2, 0.8) * SIZE + 20 * np.sin(2 * np.pi * (x * rng.uniform(0.3, 1.2) + rng.uniform()))
    return np.arange(SIZE)[:, None] > top[None, :]


def _seismic_image(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """(SIZE, SIZE) uint8 image whose salt region (mask) has its own texture and a bright top edge."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    warp = 6 * _smooth_noise(rng, coarse=4)
    layers = np.sin(2 * np.pi * (yy + rng.uniform(-0.3, 0.3) * xx + warp) / rng.uniform(5, 12))
    image = 120 + rng.uniform(25, 50) * layers + rng.normal(0, 8, (SIZE, SIZE))
    chaos = 120 + rng.uniform(-30, 30) + 10 * _smooth_noise(rng, coarse=25) + rng.normal(0, 5, (SIZE, SIZE))
    image = np.where(mask, chaos, image)
    top_edge = mask & ~np.roll(mask, 2, axis=0)  # the first rows of salt below sediment
    image[top_edge] += 60
    return np.clip(image, 0, 255).astype(np.uint8)


def _write_sample(root: Path, split: str, sample_id: str, image: np.ndarray, mask: np.ndarray | None) -> None:
    write_png(root / split / "images" / f"{sample_id}.png", image, mode="RGB")
    if mask is not None:  # 16-bit {0, 65535} when non-empty, 8-bit zeros when empty, as in the real data
        data = (mask.astype(np.uint16) * 65535) if mask.any() else mask.astype(np.uint8)
        write_png(root / split / "masks" / f"{sample_id}.png", data)


def _draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    kind = rng.choice(["empty", "blank", "full", "blob", "dome"], p=[0.3, 0.05, 0.05, 0.3, 0.3])
    if kind == "blank":  # real blank images are all zero with an empty mask
        return np.zeros((SIZE, SIZE), np.uint8), np.zeros((SIZE, SIZE), bool)
    mask = _salt_mask(rng, kind)
    return _seismic_image(rng, mask), mask


def make_demo_data(out_dir: str | Path, n_train: int, n_test: int, seed: int) -> None:
    """Write the layout under `out_dir` (created; must not exist yet, so nothing is overwritten)."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; remove it to regenerate the demo data")
    rng = np.random.default_rng(seed)
    ids = [f"{v:010x}" for v in rng.choice(16**10, size=n_train + n_test, replace=False)]
    tmp_root = out_dir.with_name(out_dir.name + ".partial")
    for sub in ("train/images", "train/masks", "test/images"):
        (tmp_root / sub).mkdir(parents=True, exist_ok=True)
    rows = []
    for i, sample_id in enumerate(ids):
        image, mask = _draw(rng)
        is_train = i < n_train
        _write_sample(tmp_root, "train" if is_train else "test", sample_id, image, mask if is_train else None)
        if is_train:
            rows.append((sample_id, rle_encode(mask)))
    pd.DataFrame(rows, columns=["id", "rle_mask"]).to_csv(tmp_root / "train.csv", index=False)
    depths = rng.integers(50, 960, size=len(ids))
    pd.DataFrame({"id": ids, "z": depths}).to_csv(tmp_root / "depths.csv", index=False)
    pd.DataFrame({"id": ids[n_train:], "rle_mask": "1 1"}).to_csv(tmp_root / "sample_submission.csv", index=False)
    (tmp_root / MANIFEST).write_text(json.dumps(_digests(tmp_root), indent=0, sort_keys=True))
    tmp_root.rename(out_dir)  # the folder appears whole or not at all


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in _NOT_DATA}


def check_demo_folder(folder: str | Path) -> None:
    """Refuse (ValueError) if `folder` holds anything make_demo_data did not write there itself.

    Snakemake deletes a rule's output folder before it reruns the rule (e.g. with --forceall), so
    this runs before any job: user data placed in the demo folder is never deleted or replaced.
    """
    folder = Path(folder)
    if not folder.exists():
        return
    manifest = folder / MANIFEST
    try:
        made = json.loads(manifest.read_text())
    except (OSError, ValueError):
        raise ValueError(f"{folder} exists but was not made by the make_demo_data rule (no readable {MANIFEST}); "
                         f"it may hold your data, so the pipeline will not replace it: move it elsewhere and set "
                         f"data_dir to it, or delete it yourself to regenerate the demo") from None
    changed = sorted(set(_digests(folder).items()) ^ set(made.items()))
    if changed:
        names = sorted({name for name, _ in changed})
        raise ValueError(f"{folder} was made by make_demo_data but {len(names)} file(s) in it were added, changed or "
                         f"removed since ({', '.join(names[:5])}{' ...' if len(names) > 5 else ''}); the pipeline will "
                         f"not replace it: move it elsewhere and set data_dir to it, or delete it yourself")
