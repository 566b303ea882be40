"""The competition metric on hand-made cases whose scores can be checked by hand."""

import numpy as np
import pytest

from saltnet.evaluation.metric import competition_score, image_scores


def masks(*pairs):
    pred = np.stack([p for p, _ in pairs]).astype(bool)
    truth = np.stack([t for _, t in pairs]).astype(bool)
    return pred, truth


def rect(n_pixels, size=10):
    """A (size, size) mask whose first `n_pixels` pixels (row-major) are set."""
    m = np.zeros(size * size, dtype=bool)
    m[:n_pixels] = True
    return m.reshape(size, size)


def test_both_empty_scores_one():
    empty = np.zeros((10, 10), bool)
    assert image_scores(*masks((empty, empty))).tolist() == [1.0]


def test_exactly_one_empty_scores_zero():
    empty, full = np.zeros((10, 10), bool), np.ones((10, 10), bool)
    assert image_scores(*masks((empty, full), (full, empty))).tolist() == [0.0, 0.0]


def test_perfect_prediction_scores_one():
    m = rect(37)
    assert image_scores(*masks((m, m))).tolist() == [1.0]


@pytest.mark.parametrize("inter, union, expected", [
    (50, 100, 0.0),    # IoU 0.50 exactly: 0.50 is not passed (strict), nothing above either
    (51, 100, 0.1),    # just above 0.50
    (55, 100, 0.1),    # exactly 0.55: only 0.50 passed
    (56, 100, 0.2),
    (95, 100, 0.9),    # exactly 0.95: the last threshold is not passed
    (96, 100, 1.0),
    (11, 20, 0.1),     # 0.55 from other counts: exactness does not depend on the scale
])
def test_iou_exactly_at_threshold_is_not_a_hit(inter, union, expected):
    truth, pred = rect(union), rect(inter)  # pred inside truth: IoU = inter / union
    assert image_scores(*masks((pred, truth)))[0] == pytest.approx(expected)


def test_score_is_mean_over_images_and_inputs_untouched():
    empty = np.zeros((10, 10), bool)
    pred, truth = masks((empty, empty), (empty, rect(5)), (rect(56), rect(100)), (rect(96), rect(100)))
    before = (pred.copy(), truth.copy())
    assert competition_score(pred, truth) == pytest.approx((1.0 + 0.0 + 0.2 + 1.0) / 4)
    assert np.array_equal(pred, before[0]) and np.array_equal(truth, before[1])


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="one shape"):
        image_scores(np.zeros((1, 5, 5)), np.zeros((1, 6, 6)))
