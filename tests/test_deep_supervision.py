"""Deep supervision: auxiliary decoder logits in training only, weighed in on non-empty masks only."""

import pytest
import torch
import torch.nn.functional as F

from saltnet.models import build_model
from saltnet.models.resunet import DeepLogits
from saltnet.training.learner import AUX_TARGETS, ResizedTargetLoss
from saltnet.training.losses import get_loss

AUX_WEIGHT = 0.3


def test_auxiliary_outputs_in_training_only_and_the_same_prediction():
    model = build_model("resunet_scse_ds", "none", 128)
    x = torch.randn(2, 3, 101, 101)
    model.train()
    out = model(x)
    assert isinstance(out, DeepLogits) and out.main.shape == (2, 1, 101, 101)
    assert [level.shape for level in out.levels] == [(2, 1, s, s) for s in (8, 16, 32, 64)]  # S/16 ... S/2
    assert (out.size, out.pad) == (128, (13, 14, 13, 14))  # 101 reflect-padded to 128
    model.eval()
    with torch.no_grad():
        main = model(x)
        plain = build_model("resunet_scse", "none", 128).eval()
        plain.load_state_dict({k: v for k, v in model.state_dict().items() if "aux_heads" not in k})
        assert main.shape == (2, 1, 101, 101)
        assert torch.allclose(main, plain(x), atol=1e-5)  # the heads add nothing at inference


def _deep(levels=(8, 16, 32, 64), n=2, seed=0) -> DeepLogits:
    """Random DeepLogits of a 128 px network fed 101 px images."""
    torch.manual_seed(seed)
    return DeepLogits(torch.randn(n, 1, 101, 101), tuple(torch.randn(n, 1, s, s) for s in levels), 128,
                      (13, 14, 13, 14))


def _at_output(level: torch.Tensor) -> torch.Tensor:
    """A level's logits as aux_resolution `output` scores them: upsampled to 128, cropped to 101."""
    return F.interpolate(level, size=(128, 128), mode="bilinear", align_corners=False)[..., 13:114, 13:114]


@pytest.mark.parametrize("loss", ["bce_dice", "symmetric_lovasz"])
def test_auxiliary_loss_counts_non_empty_masks_only(loss):
    target = torch.zeros(2, 1, 101, 101)
    target[1, :, 30:70, 30:70] = 1  # image 0 empty, image 1 salt
    out, fn = _deep(), get_loss(loss)
    wrapped = ResizedTargetLoss(fn, AUX_WEIGHT, "output")
    value = wrapped(out, target)
    expected = fn(out.main, target) + AUX_WEIGHT * sum(fn(_at_output(lv)[1:], target[1:]) for lv in out.levels)
    assert torch.allclose(value, expected)
    changed = out._replace(levels=tuple(lv.clone().index_fill_(0, torch.tensor([0]), 50.0) for lv in out.levels))
    assert torch.allclose(wrapped(changed, target), value)  # confidently wrong on the empty image: not seen
    assert torch.allclose(wrapped(out.main, target), fn(out.main, target))  # a plain tensor: the plain loss


def test_at_level_resolution_the_mask_is_padded_as_the_image_and_pooled_per_cell():
    """aux_resolution level: rows 0..49 salt; reflect-padded by 13 on top the canvas is salt in rows 0..62
    (rows 0..12 mirror rows 1..13), so at S/2 = 64 cells 0..30 are salt and cell 31 (half salt) is not."""
    target = torch.zeros(1, 1, 101, 101)
    target[..., :50, :] = 1
    pairs = AUX_TARGETS["level"](_deep(n=1), target)
    assert [t.shape[-1] for _, t in pairs] == [8, 16, 32, 64]
    finest = pairs[-1][1][0, 0]
    assert finest[:31].eq(1).all() and finest[31:].eq(0).all()
    coarsest = pairs[0][1][0, 0]  # 16-row cells: rows 48..63 are 15/16 salt, 64..79 none
    assert coarsest[:4].eq(1).all() and coarsest[4:].eq(0).all()


@pytest.mark.parametrize("where", ["output", "level"])
def test_the_config_choice_of_resolution_reaches_the_loss(where):
    """Config `aux_resolution` (TrainSettings) -> training_loss -> the levels scored as AUX_TARGETS says."""
    from saltnet.training.learner import training_loss

    target = torch.zeros(2, 1, 101, 101)
    target[:, :, 20:80, 10:60] = 1
    out, fn = _deep(seed=1), get_loss("symmetric_lovasz")
    value = training_loss("symmetric_lovasz", build_model("resunet_scse_ds", "none", 128), 0.3, where)(out, target)
    aux = sum(fn(a, t) for a, t in AUX_TARGETS[where](out, target))
    assert torch.allclose(value, fn(out.main, target) + 0.3 * aux)
    other = AUX_TARGETS["level" if where == "output" else "output"](out, target)
    assert not torch.allclose(value, fn(out.main, target) + 0.3 * sum(fn(a, t) for a, t in other))


@pytest.mark.parametrize("where", ["output", "level"])
def test_under_bf16_autocast_the_levels_are_scored_in_float32(where):
    """As fastai's Autocast hands the prediction on (DeepLogits.float(): the main logits only), the loss
    brings each level to float32 itself: a float32 loss that backpropagates into every head."""
    model = build_model("resunet_scse_ds", "none", 128).train()
    x, target = torch.randn(2, 3, 101, 101), torch.zeros(2, 1, 101, 101)
    target[:, :, 30:70, 30:70] = 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x).float()
        assert out.main.dtype == torch.float32 and out.levels[0].dtype == torch.bfloat16
        value = ResizedTargetLoss(get_loss("symmetric_lovasz"), AUX_WEIGHT, where)(out, target)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    value.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.net.aux_heads.parameters())


def test_an_unknown_resolution_is_refused_by_name():
    with pytest.raises(ValueError, match=r"aux_resolution 'native': choose one of \['level', 'output'\]"):
        ResizedTargetLoss(get_loss("bce"), AUX_WEIGHT, "native")


@pytest.mark.parametrize("where", ["output", "level"])
def test_a_network_smaller_than_the_images_trains_at_either_resolution(where):
    """size 64 < 101: the images are resized down, not padded; the levels' targets are resized likewise."""
    model = build_model("resunet_scse_ds", "none", 64).train()
    x, target = torch.randn(2, 3, 101, 101), torch.zeros(2, 1, 101, 101)
    target[:, :, 30:70, 30:70] = 1
    out = model(x)
    assert out.pad is None and out.main.shape == (2, 1, 101, 101) and out.levels[-1].shape[-1] == 32
    ResizedTargetLoss(get_loss("bce_dice"), AUX_WEIGHT, where)(out, target).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.net.aux_heads.parameters())


def test_auxiliary_heads_learn_and_an_all_empty_batch_still_backpropagates():
    model = build_model("resunet_scse_ds", "none", 64).train()
    wrapped = ResizedTargetLoss(get_loss("bce_dice"), AUX_WEIGHT, "level")
    x, target = torch.randn(2, 3, 101, 101), torch.zeros(2, 1, 101, 101)
    wrapped(model(x), target).backward()  # no salt: the auxiliary term is a zero that keeps the graph
    assert all(p.grad is None or not p.grad.any() for p in model.net.aux_heads.parameters())
    model.zero_grad()
    target[:, :, 30:70, 30:70] = 1
    wrapped(model(x), target).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.net.aux_heads.parameters())


def test_the_history_keeps_the_main_outputs_training_loss_apart(tmp_path):
    """A real (tiny) fastai fold: with deep supervision each epoch row has train_main_loss, the main
    output's share of what was optimised; without, it has none."""
    import numpy as np

    from saltnet.data.demo import make_demo_data
    from saltnet.data.folds import split_folds
    from saltnet.data.pack import pack_competition
    from saltnet.training.fold import TrainSettings, train_fold

    make_demo_data(tmp_path / "data", n_train=32, n_test=1, seed=3)
    data, _ = pack_competition(tmp_path / "data")
    folds = split_folds(data.ids, data.masks, 2, 0)
    rows = {}
    for model, where in (("resunet_scse_ds", "output"), ("resunet_scse_ds", "level"), ("resunet_scse", "output")):
        settings = TrainSettings(model=model, size=32, epochs=2, batch_size=8, lr=1e-3, wd=1e-7, loss="bce_dice",
                                 aux_resolution=where)
        rows[model, where] = train_fold(data, folds, 0, settings, tmp_path / f"{model}_{where}",
                                        torch.device("cpu")).history
    for where in ("output", "level"):
        main = rows["resunet_scse_ds", where]["train_main_loss"].to_numpy()
        assert len(main) == 2 and np.isfinite(main).all() and (main > 0).all()
    assert "train_main_loss" not in rows["resunet_scse", "output"]


def test_the_config_weight_of_the_auxiliary_levels_reaches_the_loss():
    """Config `aux_weight` (TrainSettings) -> build_learner -> the loss, 0 included."""
    from saltnet.training.learner import training_loss

    target = torch.zeros(2, 1, 101, 101)
    target[:, :, 30:70, 30:70] = 1
    out, fn = _deep(), get_loss("bce_dice")
    model = build_model("resunet_scse_ds", "none", 64)
    aux_sum = sum(fn(_at_output(lv), target) for lv in out.levels)
    for weight in (0.1, 0.3, 0.0):
        value = training_loss("bce_dice", model, weight, "output")(out, target)
        assert torch.allclose(value, fn(out.main, target) + weight * aux_sum)
