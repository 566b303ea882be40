"""Peak memory of the fold ensemble (rule ensemble) at the competition's scale, measured.

    .venv/bin/python -m saltnet.performance.ensemble_memory --images 18000 --folds 10

Writes `--folds` fold prediction files of `--images` random 101x101 float16 maps (as predict_fold
writes them, one chunk at a time) in a temporary folder, then runs saltnet.inference.ensemble's
write_fold_mean in a fresh process (and with `--methods chunked plain`, the in-memory mean after it, side
by side) and prints each process's peak resident memory (VmHWM of /proc/self/status, the interpreter, numpy
and pandas included) with the seconds it took, as JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from saltnet.inference.ensemble import CHUNK_IMAGES
from saltnet.runtime.atomic import write_npz_chunked

CHILD = """
import json, resource, sys, time
from saltnet.inference.ensemble import mean_fold_probs, write_fold_mean
from saltnet.runtime.atomic import write_npz
start = time.perf_counter()
method, out, files = sys.argv[1], sys.argv[2], sys.argv[3:]
if method == "chunked":
    write_fold_mean(files, out)
else:  # every fold and the sum in memory at once, as the ensemble was before it was chunked
    ids, probs = mean_fold_probs(files)
    write_npz(out, ids=ids, probs=probs)
# VmHWM: this process's own peak since its exec (ru_maxrss would keep the forking parent's, inherited at exec).
hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")]
peak_kb = int(hwm[0]) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"method": method, "seconds": time.perf_counter() - start, "peak_rss_mb": peak_kb / 1024}))
"""


def write_fold_file(path: Path, ids: np.ndarray, side: int, seed: int) -> None:
    """A predict_fold-like .npz (ids, probs float16) of random maps, written a chunk at a time."""
    rng = np.random.default_rng(seed)
    chunks = (rng.random((min(CHUNK_IMAGES, len(ids) - start), side, side), dtype=np.float32)
              for start in range(0, len(ids), CHUNK_IMAGES))
    write_npz_chunked(path, ids, (len(ids), side, side), np.float16, chunks)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m saltnet.performance.ensemble_memory",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=18000, help="test images (the competition: 18,000)")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--side", type=int, default=101)
    parser.add_argument("--methods", nargs="+", choices=["chunked", "plain"], default=["chunked"],
                        help="chunked: write_fold_mean (the pipeline's); plain: everything in memory, for comparison")
    parser.add_argument("--workdir", help="where the fold files go (default: a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        ids = np.array([f"{i:010x}" for i in range(args.images)])
        files = [Path(tmp) / f"fold{k}.npz" for k in range(args.folds)]
        for k, path in enumerate(files):
            write_fold_file(path, ids, args.side, seed=k)
        runs = []
        for method in args.methods:  # one after another, each in a fresh process
            proc = subprocess.run([sys.executable, "-c", CHILD, method, str(Path(tmp) / f"{method}.npz"),
                                   *map(str, files)], capture_output=True, text=True, check=True)
            runs.append(json.loads(proc.stdout))
        result = {"images": args.images, "folds": args.folds, "fold_file_mb": files[0].stat().st_size / 2**20,
                  "runs": runs}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
