"""The empty-mask classifier: a salt/no-salt logit in training, its features in every prediction."""

import pytest
import torch
import torch.nn.functional as F

from saltnet.learner import CLASS_WEIGHT, ResizedTargetLoss, training_loss

AUX_WEIGHT = 0.3
from saltnet.losses import get_loss
from saltnet.models import build_model


def test_the_class_logit_is_a_last_constant_channel_in_training_only():
    model = build_model("resunet_scse_ds_cls", "none", 128).train()
    x = torch.randn(3, 3, 101, 101)
    out = model(x)
    assert out.shape == (3, 6, 101, 101)  # main, four decoder levels, the class logit
    assert torch.all(out[:, -1] == out[:, -1, :1, :1])  # one value per image
    assert not torch.allclose(out[0, -1], out[1, -1])  # ... which depends on the image
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (3, 1, 101, 101)


def test_the_last_convolution_sees_the_classifier_features():
    """In eval mode too: changing the context projection changes the prediction."""
    model = build_model("resunet_scse_ds_cls", "none", 64).eval()
    x = torch.randn(2, 3, 101, 101)
    with torch.no_grad():
        before = model(x)
        model.net.context.bias.add_(3.0)
        assert not torch.allclose(before, model(x))


@pytest.mark.parametrize("loss", ["bce_dice", "symmetric_lovasz"])
def test_the_loss_adds_the_class_bce_and_the_auxiliary_levels(loss):
    torch.manual_seed(0)
    target = torch.zeros(3, 1, 16, 16)
    target[1:, :, 4:12, 4:12] = 1  # image 0 empty, images 1 and 2 salt
    main, aux = torch.randn(3, 1, 16, 16), torch.randn(3, 2, 16, 16)
    cls = torch.tensor([2.0, -1.0, 0.5])
    logits = torch.cat([main, aux, cls[:, None, None, None].expand(3, 1, 16, 16)], 1)
    fn = get_loss(loss)
    value = ResizedTargetLoss(fn, AUX_WEIGHT, classify=True)(logits, target)
    expected = (fn(main, target) + CLASS_WEIGHT * F.binary_cross_entropy_with_logits(cls, torch.tensor([0.0, 1, 1]))
                + AUX_WEIGHT * sum(fn(aux[1:, i : i + 1], target[1:]) for i in range(2)))
    assert torch.allclose(value, expected)
    # Without `classify` the same channel would count as one more decoder level: a different loss.
    assert not torch.allclose(ResizedTargetLoss(fn, AUX_WEIGHT)(logits, target), value)


def test_training_loss_reads_the_layout_from_the_model():
    assert training_loss("bce_dice", build_model("resunet_scse_ds_cls", "none", 64), AUX_WEIGHT).classify
    assert not training_loss("bce_dice", build_model("resunet_scse_ds", "none", 64), AUX_WEIGHT).classify


def test_the_classifier_learns_from_its_own_loss_term():
    """Its BCE reaches the classifier on empty and salt images; without that term (weight 0) nothing does."""
    torch.manual_seed(0)
    model = build_model("resunet_scse_ds_cls", "none", 64).train()
    x, target = torch.randn(2, 3, 101, 101), torch.zeros(2, 1, 101, 101)
    target[1, :, 30:70, 30:70] = 1  # image 0 empty, image 1 salt
    for weight in (CLASS_WEIGHT, 0.0):
        model.zero_grad()
        loss_fn = ResizedTargetLoss(get_loss("bce_dice"), AUX_WEIGHT, classify=True, class_weight=weight)
        loss_fn(model(x), target).backward()
        grads = [p.grad for p in model.net.classifier.parameters()]
        if weight:
            assert all(g is not None and g.abs().sum() > 0 for g in grads)
        else:
            assert all(g is None or not g.any() for g in grads)
