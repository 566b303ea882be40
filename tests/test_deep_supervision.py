"""Deep supervision: auxiliary decoder logits in training only, weighed in on non-empty masks only."""

import pytest
import torch

from saltnet.models import build_model
from saltnet.training.learner import ResizedTargetLoss
from saltnet.training.losses import get_loss

AUX_WEIGHT = 0.3


def test_auxiliary_outputs_in_training_only_and_the_same_prediction():
    model = build_model("resunet_scse_ds", "none", 128)
    x = torch.randn(2, 3, 101, 101)
    model.train()
    out = model(x)
    assert out.shape == (2, 5, 101, 101)  # the main logits, then one map per decoder level
    model.eval()
    with torch.no_grad():
        main = model(x)
        plain = build_model("resunet_scse", "none", 128).eval()
        plain.load_state_dict({k: v for k, v in model.state_dict().items() if "aux_heads" not in k})
        assert main.shape == (2, 1, 101, 101)
        assert torch.allclose(main, plain(x), atol=1e-5)  # the heads add nothing at inference


@pytest.mark.parametrize("loss", ["bce_dice", "symmetric_lovasz"])
def test_auxiliary_loss_counts_non_empty_masks_only(loss):
    torch.manual_seed(0)
    target = torch.zeros(2, 1, 16, 16)
    target[1, :, 4:12, 4:12] = 1  # image 0 empty, image 1 salt
    main, aux = torch.randn(2, 1, 16, 16), torch.randn(2, 2, 16, 16)
    wrapped, fn = ResizedTargetLoss(get_loss(loss), AUX_WEIGHT), get_loss(loss)
    value = wrapped(torch.cat([main, aux], 1), target)
    expected = fn(main, target) + AUX_WEIGHT * sum(fn(aux[1:, i : i + 1], target[1:]) for i in range(2))
    assert torch.allclose(value, expected)
    changed = aux.clone()
    changed[0] = 50.0  # confidently wrong on the empty image: the auxiliary loss does not see it
    assert torch.allclose(wrapped(torch.cat([main, changed], 1), target), value)
    assert torch.allclose(wrapped(main, target), fn(main, target))  # one channel: the plain loss


def test_auxiliary_heads_learn_and_an_all_empty_batch_still_backpropagates():
    model = build_model("resunet_scse_ds", "none", 64).train()
    wrapped = ResizedTargetLoss(get_loss("bce_dice"), AUX_WEIGHT)
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
    for model in ("resunet_scse_ds", "resunet_scse"):
        settings = TrainSettings(model=model, size=32, epochs=2, batch_size=8, lr=1e-3, wd=1e-7, loss="bce_dice")
        rows[model] = train_fold(data, folds, 0, settings, tmp_path / model, torch.device("cpu")).history
    main = rows["resunet_scse_ds"]["train_main_loss"].to_numpy()
    assert len(main) == 2 and np.isfinite(main).all() and (main > 0).all()
    assert "train_main_loss" not in rows["resunet_scse"]


def test_the_config_weight_of_the_auxiliary_levels_reaches_the_loss():
    """Config `aux_weight` (TrainSettings) -> build_learner -> the loss, 0 included."""
    from saltnet.training.learner import training_loss

    torch.manual_seed(0)
    model = build_model("resunet_scse_ds", "none", 64)
    target = torch.zeros(2, 1, 16, 16)
    target[:, :, 4:12, 4:12] = 1
    main, aux = torch.randn(2, 1, 16, 16), torch.randn(2, 4, 16, 16)
    fn = get_loss("bce_dice")
    aux_sum = sum(fn(aux[:, i : i + 1], target) for i in range(4))
    for weight, expected_weight in [(0.1, 0.1), (0.3, 0.3), (0.0, 0.0)]:
        value = training_loss("bce_dice", model, weight)(torch.cat([main, aux], 1), target)
        assert torch.allclose(value, fn(main, target) + expected_weight * aux_sum)
