"""Lovász hinge against a brute-force Lovász extension of the Jaccard loss on tiny cases."""

import itertools

import numpy as np
import pytest
import torch

from saltnet.training.losses import LOSSES, bce, get_loss, lovasz_hinge, symmetric_lovasz, symmetric_lovasz_elu


def jaccard_loss_of_errors(errors: set[int], labels: np.ndarray) -> float:
    """Delta_J(M): the Jaccard loss when exactly the pixels in M are mispredicted (sets, no cumsum)."""
    truth = {i for i, y in enumerate(labels) if y}
    pred = {i for i in range(len(labels)) if (i in truth) != (i in errors)}
    union = truth | pred
    return 0.0 if not union else 1.0 - len(truth & pred) / len(union)


def brute_lovasz_hinge(logits: np.ndarray, labels: np.ndarray) -> float:
    """Lovász extension as a Choquet integral: sum over levels of (step) * Delta({i: m_i >= level})."""
    m = np.maximum(1.0 - logits * (2 * labels - 1), 0.0)
    total, previous = 0.0, 0.0
    for level in sorted(set(m[m > 0])):
        total += (level - previous) * jaccard_loss_of_errors({i for i in range(len(m)) if m[i] >= level}, labels)
        previous = level
    return total


@pytest.mark.parametrize("seed", range(20))
def test_lovasz_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 7))
    logits = rng.normal(0, 2, size=(1, 1, 1, n))
    labels = (rng.random((1, 1, 1, n)) < 0.5).astype(float)
    ours = lovasz_hinge(torch.tensor(logits), torch.tensor(labels)).item()
    assert ours == pytest.approx(brute_lovasz_hinge(logits.ravel(), labels.ravel()), rel=1e-6, abs=1e-6)  # float32


def test_lovasz_equals_jaccard_loss_on_vertices():
    """On 0/1 hinge errors the extension equals the set function: check every subset of 4 pixels."""
    labels = np.array([1.0, 0.0, 1.0, 0.0])
    for errors in itertools.product([0, 1], repeat=4):
        # logits giving hinge error exactly 1 (mispredicted, logit 0) or 0 (correct with margin 1)
        logits = np.where(np.array(errors) == 1, 0.0, 2 * labels - 1)
        ours = lovasz_hinge(torch.tensor(logits).view(1, 1, 1, 4), torch.tensor(labels).view(1, 1, 1, 4)).item()
        expected = jaccard_loss_of_errors({i for i, e in enumerate(errors) if e}, labels)
        assert ours == pytest.approx(expected)


def test_per_image_mean_and_symmetric_variant():
    rng = np.random.default_rng(1)
    logits = torch.tensor(rng.normal(size=(3, 1, 2, 3)))
    labels = torch.tensor((rng.random((3, 1, 2, 3)) < 0.5).astype(float))
    per_image = [brute_lovasz_hinge(logits[i].numpy().ravel(), labels[i].numpy().ravel()) for i in range(3)]
    assert lovasz_hinge(logits, labels).item() == pytest.approx(np.mean(per_image))
    flipped = [brute_lovasz_hinge(-logits[i].numpy().ravel(), 1 - labels[i].numpy().ravel()) for i in range(3)]
    assert symmetric_lovasz(logits, labels).item() == pytest.approx((np.mean(per_image) + np.mean(flipped)) / 2)


@pytest.mark.parametrize("elu", [False, True])
def test_symmetric_lovasz_with_one_sort_matches_two_hinges_in_value_and_gradient(elu):
    """The one-sort symmetric loss is the mean of the hinge on (logits, y) and on (-logits, 1 - y),
    gradients included, on maps the size of training's (no tied errors: continuous logits)."""
    rng = np.random.default_rng(5)
    labels = torch.tensor((rng.random((4, 1, 32, 32)) < 0.4).astype(np.float32))
    labels[1] = 0  # an empty mask: the salt hinge is 0 there, the background one is not
    logits = torch.tensor(rng.normal(size=(4, 1, 32, 32)).astype(np.float32), requires_grad=True)
    ours = symmetric_lovasz(logits, labels, elu=elu)
    (grad,) = torch.autograd.grad(ours, logits)
    two = (lovasz_hinge(logits, labels, elu) + lovasz_hinge(-logits, 1.0 - labels, elu)) / 2
    (grad_two,) = torch.autograd.grad(two, logits)
    assert ours.item() == pytest.approx(two.item(), rel=1e-5)
    assert torch.allclose(grad, grad_two, atol=1e-7) and grad.abs().sum() > 0


def test_elu_variant_weights_errors_by_elu_plus_one_and_keeps_a_gradient_beyond_the_margin():
    """lovasz_hinge(elu=True) is the same Jaccard increments weighted by elu(e) + 1 instead of relu(e):
    equal where every error is >= 0 up to the +1 per increment (which sum to the image's Jaccard loss
    of all pixels wrong, 1 for a non-empty truth), and pixels beyond the margin still get a gradient."""
    rng = np.random.default_rng(3)
    labels = torch.tensor((rng.random((2, 1, 3, 3)) < 0.5).astype(float))
    labels[:, 0, 0, 0] = 1  # both truths non-empty
    small = torch.tensor(rng.uniform(-0.5, 0.5, (2, 1, 3, 3)))  # |logit| < 1: every hinge error > 0
    assert lovasz_hinge(small, labels, elu=True).item() == pytest.approx(lovasz_hinge(small, labels).item() + 1.0)
    confident = ((labels * 2 - 1) * 3.0).requires_grad_()  # right with margin 3: hinge error -2 everywhere
    assert lovasz_hinge(confident, labels).item() == 0.0
    lovasz_hinge(confident, labels, elu=True).backward()
    assert confident.grad.abs().sum() > 0 and (confident.grad * (labels * 2 - 1) <= 0).all()  # push further right
    assert symmetric_lovasz_elu(small, labels).item() == pytest.approx(symmetric_lovasz(small, labels, elu=True).item())
    assert get_loss("symmetric_lovasz_elu") is symmetric_lovasz_elu


def test_symmetric_lovasz_bce_is_the_sum_and_moves_pixels_the_hinge_leaves():
    labels = (torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    small = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    loss = get_loss("symmetric_lovasz_bce")
    expected = symmetric_lovasz(small, labels).item() + bce(small, labels).item()
    assert loss(small, labels).item() == pytest.approx(expected)
    confident = ((labels * 2 - 1) * 3.0).requires_grad_()  # right with margin 3: the hinge is 0 and flat
    symmetric_lovasz(confident, labels).backward()
    assert confident.grad.abs().sum() == 0
    confident.grad = None
    loss(confident, labels).backward()
    assert (confident.grad * (labels * 2 - 1) < 0).all()  # BCE still pushes every pixel further right


def test_losses_have_gradients_and_registry_lists_choices():
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    target = (torch.rand(2, 1, 8, 8) > 0.5).float()
    for name, loss in LOSSES.items():
        loss(logits, target).backward()
        assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0, name
        logits.grad = None
    with pytest.raises(KeyError, match="symmetric_lovasz"):
        get_loss("dice")


def test_bce_dice_is_small_for_a_confident_right_answer_and_large_for_a_wrong_one():
    target = torch.zeros(2, 1, 8, 8)
    target[0, :, 2:6, 2:6] = 1  # image 1 is empty: Dice of an empty prediction is 1 there
    right, wrong = (target * 2 - 1) * 20, (1 - target * 2) * 20
    loss = get_loss("bce_dice")
    assert loss(right, target) < 1e-3
    assert loss(wrong, target) > 10
