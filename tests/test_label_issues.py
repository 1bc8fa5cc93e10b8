"""find_label_issues on real Fashion-MNIST images with known wrong labels, and its report."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import SVC

from skimgclf import ImageFolderLoader, find_label_issues
from skimgclf.datasets import FASHION_MNIST_CLASSES
from skimgclf.label_issues import COLUMNS
from skimgclf.report import LABEL_ISSUES_PNG, REPORT_HTML, render_report

N_IMAGES, N_FLIPPED = 1000, 50


def pooled(images):
    """7×7 means of 28×28 images, as features: a linear model on them fits in a blink."""
    images = np.asarray(images, dtype=float).reshape(len(images), 28, 28)
    return images.reshape(len(images), 7, 4, 7, 4).mean(axis=(2, 4)).reshape(len(images), -1)


@pytest.fixture(scope="module")
def flipped(fashion_sample):
    """1,000 sample images with 5 % of their labels moved to another class at random.

    Returns ``(x, y_given, y_true, flipped_rows)``.
    """
    (x, y), _ = fashion_sample
    x, y_true = x[:N_IMAGES], y[:N_IMAGES]
    rng = np.random.default_rng(0)
    rows = rng.choice(N_IMAGES, N_FLIPPED, replace=False)
    y_given = y_true.copy()
    y_given[rows] = (y_true[rows] + rng.integers(1, 10, N_FLIPPED)) % 10
    return x, y_given, y_true, rows


@pytest.fixture(scope="module")
def issues(flipped):
    x, y_given, _, _ = flipped
    return find_label_issues(LinearDiscriminantAnalysis(), pooled(x), y_given, cv=3)


def test_flipped_labels_are_found_and_their_true_class_suggested(flipped, issues):
    _, _, y_true, rows = flipped
    flagged = issues[issues["is_label_issue"]]
    # Chance is 5 %: a random flag finds 5 % of the flipped labels per 5 % of images flagged.
    recall = np.isin(rows, flagged["row"]).mean()
    precision = np.isin(flagged["row"], rows).mean()
    assert recall >= 0.8
    assert precision >= 0.15
    assert len(flagged) < 0.3 * N_IMAGES
    # The top of the ranking is where a user looks: mostly wrong labels there.
    assert np.isin(issues["row"][:N_FLIPPED], rows).mean() >= 0.6
    found = flagged[flagged["row"].isin(rows)]
    assert (found["suggested_label"] == y_true[found["row"]]).mean() >= 0.7


def test_ranking_flagged_first_then_by_label_quality(flipped, issues):
    _, y_given, _, _ = flipped
    assert list(issues.columns) == COLUMNS
    assert sorted(issues["row"]) == list(range(N_IMAGES))
    assert (issues.index == issues["row"]).all()
    assert (issues["given_label"] == y_given[issues["row"]]).all()
    n_flagged = int(issues["is_label_issue"].sum())
    assert issues["is_label_issue"].iloc[:n_flagged].all()
    for part in (issues.iloc[:n_flagged], issues.iloc[n_flagged:]):
        assert part["label_quality"].is_monotonic_increasing
    # Self-confidence is the probability of the given label.
    assert np.allclose(issues["label_quality"], issues["given_probability"])
    flagged = issues.iloc[:n_flagged]
    assert (flagged["suggested_label"] != flagged["given_label"]).all()


class FixedProbabilities(ClassifierMixin, BaseEstimator):
    """Predicts the probabilities of row ``X[i, 0]`` of ``table``, whatever it learnt."""

    def __init__(self, table=None):
        self.table = table

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def predict_proba(self, X):
        return self.table[np.asarray(X)[:, 0].astype(int)]


# Three classes, three images of each. Thresholds, the mean probability of a class over the
# images labelled with it: a (0.9 + 0.8 + 0.1) / 3 = 0.6, b (0.7 + 0.75 + 0.4) / 3 = 0.617,
# c (0.95 + 0.6 + 0.15) / 3 = 0.567.
LABELS = np.array(["a", "a", "a", "b", "b", "b", "c", "c", "c"])
TABLE = np.array([
    [0.9, 0.05, 0.05],
    [0.8, 0.1, 0.1],
    [0.1, 0.2, 0.7],    # a, below a's threshold and c above its own: flagged, c suggested
    [0.2, 0.7, 0.1],
    [0.2, 0.75, 0.05],
    [0.55, 0.4, 0.05],  # b, below its threshold, but no other class reaches its own: kept
    [0.0, 0.05, 0.95],
    [0.2, 0.2, 0.6],
    [0.0, 0.85, 0.15],  # c, below, and b above: flagged, b suggested
])


@pytest.mark.parametrize("rank_by, order", [
    # Flagged rows first, 2 (probability 0.1) before 8 (0.15); then the others by it.
    ("self_confidence", [2, 8, 5, 7, 3, 4, 1, 0, 6]),
    # Margins mapped to [0, 1]: row 8 (0.15 - 0.85 + 1) / 2 = 0.15, row 2 0.2, row 5 0.425.
    ("normalized_margin", [8, 2, 5, 7, 3, 4, 1, 0, 6]),
])
def test_confident_learning_flags_the_off_diagonal(rank_by, order):
    X = np.arange(len(LABELS))[:, None].tolist()  # a list: any array-like will do
    issues = find_label_issues(FixedProbabilities(TABLE), X, LABELS, cv=3, rank_by=rank_by)
    assert issues["row"].tolist() == order
    assert issues.index.tolist() == order
    flagged = issues[issues["is_label_issue"]].set_index("row")
    assert sorted(flagged.index) == [2, 8]
    assert flagged.loc[2, "suggested_label"] == "c" and flagged.loc[8, "suggested_label"] == "b"
    assert flagged.loc[2, "suggested_probability"] == pytest.approx(0.7)
    kept = issues.set_index("row").loc[5]
    assert not kept["is_label_issue"] and kept["suggested_label"] == "a"
    if rank_by == "normalized_margin":
        assert flagged.loc[8, "label_quality"] == pytest.approx(0.15)


def test_pipeline_over_a_table_keeps_its_index_and_labels(small_layout, capsys):
    layout, _, y, _, _ = small_layout
    table = pd.read_csv(layout.train_csv).set_index("id", drop=False)
    names = np.array(FASHION_MNIST_CLASSES)[y]
    model = make_pipeline(ImageFolderLoader(layout.train_dir, path_column="id", suffix=".png"),
                          FunctionTransformer(pooled), LinearDiscriminantAnalysis())
    issues = find_label_issues(model, table[["id"]], names, cv=2, verbose=True)
    assert issues.index.name == "id"
    assert (issues.index == table.index[issues["row"]]).all()
    assert set(issues["given_label"]) == set(FASHION_MNIST_CLASSES)
    assert (issues["given_label"] == names[issues["row"]]).all()
    # The progress bar counts the fits, which the user waits for.
    err = capsys.readouterr().err
    assert "Out-of-fold probabilities" in err and "2/2" in err


@pytest.mark.parametrize("y, cv, message", [
    (["a"] * 4 + ["b"] * 2, 3, "cv=3 folds need at least 3 examples of every class, but class "
                               "'b' has 2; lower cv to 2"),
    (["a"] * 5 + ["b"], 2, "class 'b' has a single example"),
    (["a"] * 6, 2, "at least two classes; every label is 'a'"),
    (["a", "b"] * 2, 2, "X has 6 examples but y has 4 labels"),
])
def test_bad_labels_are_refused_before_any_fit(y, cv, message):
    with pytest.raises(ValueError, match=message):
        find_label_issues(FixedProbabilities(), np.zeros((6, 1)), y, cv=cv)


@pytest.mark.parametrize("estimator, kwargs, message", [
    (SVC(), {}, "'estimator' parameter of find_label_issues must be an object implementing "
                "'fit' and 'predict_proba'"),
    (LinearDiscriminantAnalysis(), {"cv": 1}, "'cv' parameter"),
    (LinearDiscriminantAnalysis(), {"rank_by": "loss"}, "'rank_by' parameter"),
])
def test_bad_parameters_are_refused(estimator, kwargs, message):
    with pytest.raises(ValueError, match=message):
        find_label_issues(estimator, np.zeros((6, 1)), ["a", "b"] * 3, **kwargs)


def test_report_shows_the_flagged_images_by_name(flipped, issues):
    x, _, _, _ = flipped
    named = issues.set_axis([f"img{row}.png" for row in issues["row"]]).rename_axis("file")
    files = render_report(label_issues=named, label_issue_images=x,
                          class_names=FASHION_MNIST_CLASSES)
    assert files[LABEL_ISSUES_PNG][:8] == b"\x89PNG\r\n\x1a\n"
    page = files[REPORT_HTML].decode()
    section = page.split('<h2 id="label-issues">Likely mislabelled training images</h2>')[1]
    n_flagged = int(issues["is_label_issue"].sum())
    assert f"{n_flagged} of {N_IMAGES} training images are flagged" in section
    first = issues.iloc[0]
    assert "<th>file</th>" in section
    assert (f"<td>img{first['row']}.png</td><td>{FASHION_MNIST_CLASSES[first['given_label']]}"
            f"</td><td>{first['given_probability']:.3f}</td>") in section
    # Unflagged images are not listed.
    last = issues.iloc[-1]
    assert f"<td>img{last['row']}.png</td>" not in section


@pytest.mark.parametrize("kwargs, message", [
    ({"label_issues": "issues.csv"}, "must be the DataFrame that find_label_issues returned"),
    ({"label_issues": pd.DataFrame({"row": [0]})}, "lacks the columns given_label"),
    ({"label_issue_images": np.zeros((3, 4, 4))}, "without label_issues"),
    ("short images", "holds 10 images but label_issues has 1000 rows"),
])
def test_report_refuses_label_issues_it_cannot_show(issues, kwargs, message):
    if kwargs == "short images":
        kwargs = {"label_issues": issues, "label_issue_images": np.zeros((10, 4, 4))}
    with pytest.raises(ValueError, match=message):
        render_report(**kwargs)
