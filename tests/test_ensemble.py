"""The fold ensemble in bounded memory: the chunked mean is the plain mean, bit for bit, and its peak memory
does not grow with the number of test images."""

from __future__ import annotations

import numpy as np
import pytest

from saltnet.inference.ensemble import mean_fold_probs, write_fold_mean
from saltnet.performance import ensemble_memory
from saltnet.runtime.atomic import write_npz


def fold_files(tmp_path, n: int = 53, folds: int = 3, side: int = 11):
    rng = np.random.default_rng(0)
    ids = np.array([f"img{i:03d}" for i in range(n)])
    paths = []
    for k in range(folds):
        paths.append(tmp_path / f"fold{k}.npz")
        write_npz(paths[-1], ids=ids, probs=rng.random((n, side, side)).astype(np.float16))
    return ids, paths


@pytest.mark.parametrize("chunk", [1, 7, 53, 512])
def test_the_chunked_mean_is_the_plain_mean_exactly(tmp_path, chunk):
    ids, paths = fold_files(tmp_path)
    plain_ids, plain = mean_fold_probs(paths)
    assert write_fold_mean(paths, tmp_path / "out.npz", chunk=chunk) == 3
    with np.load(tmp_path / "out.npz", allow_pickle=False) as npz:
        assert np.array_equal(npz["ids"], plain_ids) and npz["probs"].dtype == np.float16
        assert np.array_equal(npz["probs"], plain)


def test_folds_of_other_images_are_refused_by_name(tmp_path):
    ids, paths = fold_files(tmp_path)
    write_npz(paths[1], ids=ids[::-1], probs=np.zeros((len(ids), 11, 11), np.float16))
    with pytest.raises(ValueError, match=r"fold1\.npz: ids differ"):
        write_fold_mean(paths, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


def test_a_truncated_fold_file_is_an_error_and_leaves_no_output(tmp_path):
    ids, paths = fold_files(tmp_path)
    write_npz(paths[2], ids=ids, probs=np.zeros((len(ids) - 1, 11, 11), np.float16))
    with pytest.raises(ValueError, match=r"fold2\.npz: probs of shape"):
        write_fold_mean(paths, tmp_path / "out.npz")
    assert not list(tmp_path.glob("*out.npz*"))


@pytest.mark.process
def test_peak_memory_does_not_grow_with_the_test_set(tmp_path):
    """The benchmark's own measurement at 300 and 3000 images of 4 folds: ten times the images (about
    120 MB more in memory for the plain mean) must not move the chunked peak by more than 25 MB."""
    small, large = (ensemble_memory.main(["--images", str(n), "--folds", "4", "--methods", "chunked", "plain",
                                          "--workdir", str(tmp_path)])["runs"] for n in (300, 3000))
    assert large[0]["peak_rss_mb"] - small[0]["peak_rss_mb"] < 25
    assert large[1]["peak_rss_mb"] - small[1]["peak_rss_mb"] > 100  # the measurement can see the difference
