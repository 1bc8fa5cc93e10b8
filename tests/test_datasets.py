import numpy as np
import pandas as pd
from PIL import Image

from skimgclf.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist_sample


def test_sample_is_balanced_real_fashion_mnist():
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist_sample()
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    assert x_train.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [400] * 10
    assert np.bincount(y_test).tolist() == [100] * 10
    assert len(FASHION_MNIST_CLASSES) == 10
    # Real photos, not noise: Fashion-MNIST's mean pixel is ~73 and its borders are mostly black.
    assert 60 < x_train.mean() < 85
    assert np.median(x_train[:, 0, :]) == 0


def test_sample_matches_the_full_set(fashion_full):
    (full_x, full_y), _ = fashion_full
    from importlib import resources

    with np.load(resources.files("skimgclf.datasets") / "data/fashion_mnist_sample.npz") as d:
        np.testing.assert_array_equal(full_x[d["train_index"]], d["x_train"])
        np.testing.assert_array_equal(full_y[d["train_index"]], d["y_train"])


def test_export_competition_layout(small_layout):
    layout, x_train, y_train, x_test, _ = small_layout
    train = pd.read_csv(layout.train_csv)
    test = pd.read_csv(layout.test_csv)
    sub = pd.read_csv(layout.sample_submission)
    assert train.columns.tolist() == ["id", "label"]
    assert train["id"].tolist() == list(range(1, 301))
    assert test["id"].tolist() == list(range(301, 401))
    assert sub.columns.tolist() == ["id", "label"] and sub["id"].equals(test["id"])
    np.testing.assert_array_equal(train["label"], y_train)
    np.testing.assert_array_equal(np.asarray(Image.open(layout.train_dir / "7.png")), x_train[6])
    np.testing.assert_array_equal(np.asarray(Image.open(layout.test_dir / "301.png")), x_test[0])
