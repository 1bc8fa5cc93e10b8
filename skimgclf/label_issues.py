"""Likely mislabelled training images, from out-of-fold probabilities and confident learning.

Written on scikit-learn's ``cross_val_predict`` after Northcutt, Jiang and Chuang, "Confident
Learning: Estimating Uncertainty in Dataset Labels", JAIR 70 (2021). The established library
for this carries a copyleft licence, so none of its code is used.
"""

from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.utils import column_or_1d
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions, validate_params
from sklearn.utils.validation import _num_samples
from tqdm.auto import tqdm

COLUMNS = ["row", "given_label", "suggested_label", "given_probability",
           "suggested_probability", "label_quality", "is_label_issue"]


@validate_params(
    {
        "estimator": [HasMethods(["fit", "predict_proba"])],
        "X": ["array-like"],
        "y": ["array-like"],
        "cv": [Interval(Integral, 2, None, closed="left")],
        "random_state": ["random_state"],
        "rank_by": [StrOptions({"self_confidence", "normalized_margin"})],
        "verbose": ["verbose"],
    },
    # The estimator's parameters are its fit's to check, in every fold.
    prefer_skip_nested_validation=False,
)
def find_label_issues(estimator, X, y, *, cv=5, random_state=0, rank_by="self_confidence",
                      verbose=False):
    """Rank the training examples by how likely their given label is wrong.

    Each example's class probabilities come from a clone of ``estimator`` fitted on the other
    folds of a stratified, shuffled ``cv``-fold split (out-of-fold predictions), so no example
    is judged by a model that saw its label. This costs ``cv`` fits of ``estimator``, one after
    the other, on ``(cv - 1) / cv`` of the data each; ``verbose`` shows a progress bar over
    them.

    Confident learning then sets a threshold per class, the mean out-of-fold probability of
    that class over the examples labelled with it. An example is flagged when the probability
    of its given label is below that label's threshold while another class reaches its own
    threshold: it falls off the diagonal of the confident joint. The suggested label is the
    most probable of the classes that reach their threshold (the most probable of all when
    none does).

    Parameters
    ----------
    estimator : estimator object
        Any scikit-learn classifier with ``predict_proba``, or a pipeline ending in one, such
        as ``Pipeline([("load", ImageFolderLoader(...)), ("cnn", CNNClassifier(...))])``. It
        is cloned for every fold and never fitted itself.
    X : array-like of shape (n_samples, ...)
        What ``estimator`` fits on: images, features, or a table of image names for a
        pipeline that loads them.
    y : array-like of shape (n_samples,)
        The given labels, ints or strings.
    cv : int, default=5
        The number of folds, at least 2 and at most the number of examples of the smallest
        class. More folds train each model on more data, at the cost of more fits.
    random_state : int, RandomState instance or None, default=0
        Seeds the shuffle of the folds, so that a given ``y`` is split the same way every
        time. The estimator's own randomness is its own ``random_state``'s.
    rank_by : {"self_confidence", "normalized_margin"}, default="self_confidence"
        The ``label_quality`` score that orders the result: the out-of-fold probability of the
        given label, or that probability minus the largest probability of another class,
        mapped to [0, 1]. Lower is more suspicious.
    verbose : bool or int, default=False
        Show a progress bar over the ``cv`` fits.

    Returns
    -------
    pandas.DataFrame
        One row per example, flagged examples first, then by ``label_quality``, lowest
        first. Its index is ``X``'s when ``X`` is a pandas object, else the row positions.
        Columns: ``row`` (the position in ``X`` and ``y``), ``given_label``,
        ``suggested_label``, ``given_probability`` and ``suggested_probability`` (their
        out-of-fold probabilities), ``label_quality`` and ``is_label_issue``.

    Raises
    ------
    ValueError
        If ``X`` and ``y`` differ in length, ``y`` has fewer than two classes, or a class has
        fewer than ``cv`` examples.

    Examples
    --------
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from skimgclf import find_label_issues
    >>> from skimgclf.datasets import load_fashion_mnist_sample
    >>> (x, y), _ = load_fashion_mnist_sample()
    >>> x, y = x[:1000].reshape(1000, -1), y[:1000].copy()
    >>> y[:20] = (y[:20] + 1) % 10  # twenty wrong labels
    >>> issues = find_label_issues(KNeighborsClassifier(10), x, y, cv=3)
    >>> int(issues["row"][:20].isin(range(20)).sum())  # of them, among the top 20
    11
    """
    y = column_or_1d(y)
    n_samples = _num_samples(X)
    if n_samples != len(y):
        raise ValueError(f"X has {n_samples} examples but y has {len(y)} labels; give one "
                         f"label per example")
    check_folds(y, cv)
    classes, encoded = np.unique(y, return_inverse=True)
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=random_state)
    with tqdm(total=cv, disable=not verbose, unit="fit",
              desc="Out-of-fold probabilities") as bar:
        # cross_val_predict fits the folds one after the other (no n_jobs), in this process,
        # so each fit can advance the bar.
        probabilities = cross_val_predict(_ReportsFits(estimator, lambda: bar.update()), X,
                                          encoded, cv=folds, method="predict_proba")
    index = X.index if isinstance(X, (pd.DataFrame, pd.Series)) else None
    return _rank(probabilities, encoded, classes, index, rank_by)


def check_folds(y, cv):
    """Check that ``y`` can be split into ``cv`` stratified folds, before any fitting.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        The labels.
    cv : int
        The number of folds.

    Raises
    ------
    ValueError
        If ``y`` has fewer than two classes, or a class has fewer than ``cv`` examples,
        naming the smallest class and its count.
    """
    classes, counts = np.unique(column_or_1d(y), return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"finding label issues needs at least two classes; every label is "
                         f"{_plain(classes[0])!r}" if len(classes) else "y is empty")
    smallest = int(np.argmin(counts))
    if counts[smallest] < cv:
        raise ValueError(
            f"cv={cv} folds need at least {cv} examples of every class, but class "
            f"{_plain(classes[smallest])!r} has {counts[smallest]}; lower cv to "
            f"{max(2, counts[smallest])} or add examples of that class"
            if counts[smallest] >= 2 else
            f"class {_plain(classes[smallest])!r} has a single example, which no fold can "
            f"judge; add examples of it or drop it")


def _plain(label):
    # repr of a NumPy scalar spells its type (np.str_('cat')); the user wrote 'cat'.
    return label.item() if isinstance(label, np.generic) else label


def _rank(probabilities, encoded, classes, index, rank_by):
    """Confident learning on out-of-fold ``probabilities``: the ranked result table."""
    rows = np.arange(len(encoded))
    given = probabilities[rows, encoded]
    # Per-class thresholds: how confident the model is, on average, in the examples that
    # carry that label. Each class has examples (check_folds), so none is empty.
    thresholds = np.array([probabilities[encoded == k, k].mean()
                           for k in range(len(classes))])
    confident = probabilities >= thresholds
    # The suggestion is the most probable class among the confident ones, or of all classes.
    candidates = np.where(confident.any(axis=1, keepdims=True),
                          np.where(confident, probabilities, -1.0), probabilities)
    suggested = candidates.argmax(axis=1)
    others_confident = confident.copy()
    others_confident[rows, encoded] = False
    is_issue = (given < thresholds[encoded]) & others_confident.any(axis=1)
    if rank_by == "self_confidence":
        quality = given
    else:
        others = probabilities.copy()
        others[rows, encoded] = -np.inf
        quality = (given - others.max(axis=1) + 1) / 2
    frame = pd.DataFrame({
        "row": rows, "given_label": classes[encoded], "suggested_label": classes[suggested],
        "given_probability": given, "suggested_probability": probabilities[rows, suggested],
        "label_quality": quality, "is_label_issue": is_issue,
    }, index=index)
    # Stable: ties keep the order of X.
    order = np.lexsort((quality, ~is_issue))
    return frame.iloc[order]


class _ReportsFits(ClassifierMixin, BaseEstimator):
    """``estimator``, calling ``on_fit()`` after each fit: how the progress bar learns of one.

    ``on_fit`` must be a plain function: ``clone`` deep-copies the object behind a bound
    method (the bar itself), but keeps a function as it is.
    """

    def __init__(self, estimator, on_fit):
        self.estimator = estimator
        self.on_fit = on_fit

    def fit(self, X, y):
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.classes_ = self.estimator_.classes_
        self.on_fit()
        return self

    def predict(self, X):  # cross_val_predict asks for it, though it calls predict_proba
        return self.estimator_.predict(X)

    def predict_proba(self, X):
        return self.estimator_.predict_proba(X)
