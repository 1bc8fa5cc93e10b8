import numpy as np
import pytest

from skimgclf.calibration import expected_calibration_error, reliability_bins


def confident(rng, n, confidence, accuracy):
    """Two-class probabilities of the given confidence, right for a share ``accuracy``."""
    y_pred = rng.integers(0, 2, n)
    y_true = np.where(rng.random(n) < accuracy, y_pred, 1 - y_pred)
    proba = np.where(y_pred[:, None] == [0, 1], confidence, 1 - confidence)
    return y_true, proba


def test_a_calibrated_classifier_scores_near_zero_an_overconfident_one_its_gap():
    rng = np.random.default_rng(0)
    y_true, proba = confident(rng, 20_000, 0.8, 0.8)
    assert expected_calibration_error(y_true, proba) < 0.01
    y_true, proba = confident(rng, 20_000, 0.95, 0.7)
    assert expected_calibration_error(y_true, proba) == pytest.approx(0.25, abs=0.01)


def test_bins_hold_every_image_and_follow_guo_et_al():
    # Worked by hand: four images alone in their bins, gaps 0.1, 0.2, 0.7 and 0.4.
    y_true, proba = [0, 1, 1, 0], [[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.6, 0.4]]
    assert expected_calibration_error(y_true, proba) == pytest.approx(0.35)
    confidence, accuracy, count = reliability_bins(y_true, proba)
    np.testing.assert_allclose(confidence, [0.6, 0.7, 0.8, 0.9])
    np.testing.assert_array_equal(accuracy, [1, 0, 1, 1])
    # A confidence of exactly 1 falls in the last bin; one bin is one gap.
    assert expected_calibration_error([0, 1], [[1.0, 0.0], [1.0, 0.0]], n_bins=1) == 0.5
    assert count.sum() == 4


def test_string_labels_in_the_classifiers_order():
    proba = [[0.1, 0.9], [0.8, 0.2]]
    assert expected_calibration_error(["dog", "cat"], proba, labels=["cat", "dog"]) == (
        pytest.approx(0.15))
    with pytest.raises(ValueError, match="pass labels=classifier.classes_"):
        expected_calibration_error(["dog", "dog"], proba)
