"""Test-time views: the flip and pixel shifts are undone exactly, and the flip alone is what it always was."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from saltnet.data.loaders import prepare_images
from saltnet.inference.predict import predict_probs, tta_views
from saltnet.models import build_model

CPU = torch.device("cpu")


class Pixelwise(nn.Module):
    """(N, 3, H, W) -> (N, 1, H, W): a logit of each pixel's own value, so any view put back in the wrong
    place changes the average."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 3 * x[:, :1]


class Positional(nn.Module):
    """(N, 3, H, W) -> (N, 1, H, W): the column index as logit, blind to the content: the flip and the
    shifts each see another answer, so averaging them must differ from the unshifted view."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cols = torch.arange(x.shape[-1], dtype=x.dtype) / x.shape[-1]
        return cols.expand(x.shape[0], 1, *x.shape[-2:]).contiguous()


def random_images(n: int = 5, side: int = 101) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, side, side), dtype=np.uint8)


def test_views():
    assert tta_views(False) == [(0, 0, False)]
    assert tta_views(True) == [(0, 0, False), (0, 0, True)]
    assert tta_views(True, [(0, 8), (0, 0), (0, 8), (-4, 2)]) == [
        (0, 0, False), (0, 0, True), (0, 8, False), (0, 8, True), (-4, 2, False), (-4, 2, True)]


@pytest.mark.parametrize("shifts", [[(0, 8), (0, -8)], [(8, 0), (-8, 0), (3, -5)], [(0, 50)]])
def test_shifted_views_are_put_back_where_they_came_from(shifts):
    """A pixelwise model gives the same probabilities with or without shifts (and flips), up to float16."""
    images = random_images()
    plain = predict_probs(Pixelwise(), images, 101, CPU, batch_size=2, tta=False)
    shifted = predict_probs(Pixelwise(), images, 101, CPU, batch_size=2, tta=True, shifts=shifts)
    assert np.abs(plain.astype(np.float32) - shifted.astype(np.float32)).max() <= 1e-3


def test_the_views_are_averaged():
    """A model blind to the content answers each view differently: the flip and shifts move the average."""
    images = random_images(2)
    plain = predict_probs(Positional(), images, 101, CPU, tta=False).astype(np.float32)
    flip = predict_probs(Positional(), images, 101, CPU, tta=True).astype(np.float32)
    np.testing.assert_allclose(flip, flip[..., ::-1], atol=1e-3)  # the mean of a ramp and its mirror
    assert np.abs(plain - flip).max() > 0.1
    shifted = predict_probs(Positional(), images, 101, CPU, tta=False, shifts=[(0, 10)]).astype(np.float32)
    # column j: the unshifted view says sigmoid(j/101), the shifted one sigmoid((j - 10)/101) where it saw j
    cols = np.arange(101)
    expected = 1 / (1 + np.exp(-cols / 101))
    seen = cols >= 10
    expected[seen] = (expected[seen] + 1 / (1 + np.exp(-(cols[seen] - 10) / 101))) / 2
    np.testing.assert_allclose(shifted[0, 50], expected, atol=2e-3)


def test_flip_alone_is_the_mean_of_the_image_and_its_mirror():
    """The default views (flip, no shift) on the real padded model: (p(x) + flip(p(flip(x)))) / 2."""
    torch.manual_seed(0)
    model = build_model("resunet_scse", "none", 128).eval()
    images = random_images(3)
    got = predict_probs(model, images, 101, CPU, tta=True)
    x = prepare_images(torch.from_numpy(images), 101)
    with torch.no_grad():
        want = (torch.sigmoid(model(x)) + torch.sigmoid(model(x.flip(-1))).flip(-1)) / 2
    np.testing.assert_allclose(got.astype(np.float32), want[:, 0].numpy(), atol=1e-3)


def test_a_shift_larger_than_the_image_is_refused():
    with pytest.raises(ValueError, match="TTA shift of 101 px does not fit a 101x101"):
        predict_probs(Pixelwise(), random_images(1), 101, CPU, shifts=[(101, 0)])
