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


@pytest.fixture(scope="module")
def two_stages(tmp_path_factory):
    """Packed arrays of 6 images in 2 folds and two model files of resunet_scse (random init, other seeds),
    written as a finetune's and a pseudo stage's."""
    from saltnet.config.settings import TrainSettings
    from saltnet.models.modelfile import save_model_file
    from saltnet.runtime.atomic import write_npz
    from saltnet.steps import folds_step

    root = tmp_path_factory.mktemp("stages")
    rng = np.random.default_rng(1)
    ids = np.array([f"img{i}" for i in range(6)])
    write_npz(root / "train.npz", ids=ids, images=random_images(6),
              masks=(rng.random((6, 101, 101)) > 0.5).astype(np.uint8))
    write_npz(root / "test.npz", ids=np.array(["t0", "t1", "t2"]), images=random_images(3)[::-1].copy())
    folds_step(str(root / "train.npz"), 2, 0, str(root / "folds.parquet"))
    settings = {}
    for seed, stage in enumerate(("finetune", "pseudo")):
        torch.manual_seed(seed)
        settings[stage] = TrainSettings(model="resunet_scse", size=128, epochs=4, batch_size=8,
                                        lr=1e-3 if stage == "finetune" else 5e-4, wd=1e-7)
        save_model_file(root / f"{stage}.pth", build_model("resunet_scse", "none", 128).state_dict(),
                        settings[stage], stage)
    return root, settings


def _predict(root, weights, expected, name):
    from saltnet.steps import predict_step

    predict_step(weights, str(root / "train.npz"), str(root / "test.npz"), str(root / "folds.parquet"), 1,
                 str(root / f"{name}-test.npz"), str(root / f"{name}-oof.npz"), str(root / "locks"), batch_size=4,
                 tta=True, shifts=[], bf16=False, expected=expected, gpu_slots=0)
    return {part: dict(np.load(root / f"{name}-{part}.npz")) for part in ("test", "oof")}


def test_a_fold_predicted_by_two_stages_models_is_the_mean_of_each(two_stages):
    """config predict.stages [finetune, pseudo]: each fold's test and out-of-fold probabilities are the mean of
    the two models' (in their dtype), for the same ids; one model alone is what it always was."""
    root, settings = two_stages
    alone = {stage: _predict(root, str(root / f"{stage}.pth"), settings[stage], stage) for stage in settings}
    both = _predict(root, [str(root / f"{s}.pth") for s in settings], [settings[s] for s in settings], "both")
    for part in ("test", "oof"):
        first, second = alone["finetune"][part]["probs"], alone["pseudo"][part]["probs"]
        assert np.abs(first.astype(np.float32) - second).max() > 0.01  # two different models
        mean = (first.astype(np.float32) + second) / 2
        assert both[part]["probs"].dtype == first.dtype
        np.testing.assert_allclose(both[part]["probs"].astype(np.float32), mean, atol=1e-3)
        np.testing.assert_array_equal(both[part]["ids"], alone["finetune"][part]["ids"])
    assert list(both["test"]["ids"]) == ["t0", "t1", "t2"] and len(both["oof"]["ids"]) == 3


def test_a_model_file_of_another_recipe_among_them_is_refused_before_any_prediction(two_stages, monkeypatch):
    """The second stage's file (another lr) checked against the first stage's settings: ValueError naming the
    file, before the first model predicts anything, and no output written."""
    from saltnet.inference import predict

    root, settings = two_stages
    called = []
    monkeypatch.setattr(predict, "predict_probs", lambda *args, **kwargs: called.append(1))
    with pytest.raises(ValueError, match="pseudo.pth"):
        _predict(root, [str(root / "finetune.pth"), str(root / "pseudo.pth")], [settings["finetune"]] * 2, "wrong")
    assert not called and not list(root.glob("wrong-*"))
