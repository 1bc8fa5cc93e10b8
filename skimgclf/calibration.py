"""Whether predicted probabilities can be taken at their word: expected calibration error.

A classifier is calibrated when, of the images it gives a confidence of 0.8, eight in ten are
right. The expected calibration error (Guo et al., "On Calibration of Modern Neural Networks",
ICML 2017) measures the gap: images are binned by the confidence of their predicted class, and
the gaps between each bin's accuracy and its mean confidence are averaged, weighted by the
bin's share of the images. To improve it, wrap the classifier in scikit-learn's
``CalibratedClassifierCV`` (docs/report.md measures it).
"""

import numpy as np
from sklearn.utils import column_or_1d
from sklearn.utils.multiclass import unique_labels

#: The number of equal-width bins of confidence, as in Guo et al.
N_BINS = 15


def expected_calibration_error(y_true, y_prob, *, labels=None, n_bins=N_BINS):
    """Expected calibration error of the predicted class's probability.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    y_prob : array-like of shape (n_samples, n_classes)
        Predicted probabilities, as ``predict_proba`` returns them.
    labels : array-like of shape (n_classes,), default=None
        The labels of the columns of ``y_prob``, as the classifier's ``classes_``; None takes
        the sorted labels of ``y_true``, which must then hold every class.
    n_bins : int, default=15
        Equal-width bins of confidence over [0, 1].

    Returns
    -------
    float
        The weighted mean gap between accuracy and confidence, in [0, 1]: 0 is perfectly
        calibrated.

    Raises
    ------
    ValueError
        If the shapes disagree, or ``labels`` is needed and missing.

    Examples
    --------
    >>> from skimgclf.calibration import expected_calibration_error
    >>> expected_calibration_error([0, 1, 1, 0], [[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.6, 0.4]])
    0.35
    """
    confidence, correct, counts = _binned(y_true, y_prob, labels, n_bins)
    shares = counts / counts.sum()
    return float(np.sum(shares * np.abs(correct - confidence)))


def reliability_bins(y_true, y_prob, *, labels=None, n_bins=N_BINS):
    """The points of a reliability diagram: mean confidence and accuracy per non-empty bin.

    Parameters
    ----------
    y_true, y_prob, labels, n_bins
        As for :func:`expected_calibration_error`.

    Returns
    -------
    confidence, accuracy : ndarray of shape (n_nonempty_bins,)
        Mean confidence of the predicted class, and the share of right predictions, per bin.
    count : ndarray of shape (n_nonempty_bins,)
        The number of images in each bin.
    """
    return _binned(y_true, y_prob, labels, n_bins)


def _binned(y_true, y_prob, labels, n_bins):
    y_true = column_or_1d(y_true)
    y_prob = np.asarray(y_prob, dtype=float)
    if y_prob.ndim != 2 or len(y_prob) != len(y_true):
        raise ValueError(f"y_prob must have shape (n_samples, n_classes) with {len(y_true)} "
                         f"rows, one per label of y_true; got shape {y_prob.shape}")
    labels = unique_labels(y_true) if labels is None else np.asarray(labels)
    if len(labels) != y_prob.shape[1]:
        raise ValueError(f"y_prob has {y_prob.shape[1]} columns but there are {len(labels)} "
                         f"labels; pass labels=classifier.classes_, the labels of its columns")
    confidence = y_prob.max(axis=1)
    correct = labels[y_prob.argmax(axis=1)] == y_true
    # Bins (k/n, (k+1)/n], the first one closed: a confidence of exactly 1 is in the last.
    bins = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    filled = counts > 0
    mean_confidence = np.bincount(bins, confidence, n_bins)[filled] / counts[filled]
    accuracy = np.bincount(bins, correct, n_bins)[filled] / counts[filled]
    return mean_confidence, accuracy, counts[filled]
