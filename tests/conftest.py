"""Shared fixtures: real Fashion-MNIST images, from the shipped sample or the full set."""

from pathlib import Path

import numpy as np
import pytest
from PIL import ImageFile

from skimgclf.datasets import export_competition_layout, load_fashion_mnist_sample

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def fashion_sample():
    """The sample shipped in the package: ``(x_train, y_train), (x_test, y_test)``, uint8."""
    return load_fashion_mnist_sample()


@pytest.fixture(scope="session")
def fashion_full():
    """The full Fashion-MNIST from ``../shared/data``; skips where that folder is absent."""
    path = SHARED_DATA / "fashion-mnist.npz"
    if not path.exists():
        pytest.skip(f"full Fashion-MNIST not found at {path}")
    with np.load(path) as data:
        return (data["x_train"], data["y_train"]), (data["x_test"], data["y_test"])


@pytest.fixture(scope="session")
def small_layout(fashion_sample, tmp_path_factory):
    """300 training and 100 test images of the sample in the competition layout.

    Returns ``(layout, x_train, y_train, x_test, y_test)`` where the arrays are what was written.
    """
    (x_train, y_train), (x_test, y_test) = fashion_sample
    x_train, y_train, x_test, y_test = x_train[:300], y_train[:300], x_test[:100], y_test[:100]
    layout = export_competition_layout(x_train, y_train, tmp_path_factory.mktemp("layout"),
                                       x_test=x_test)
    return layout, x_train, y_train, x_test, y_test


@pytest.fixture
def allocations(monkeypatch):
    """The sizes of the images whose pixels PIL allocates, in order.

    Every plugin's load goes through ``ImageFile.load_prepare``, where the pixels are allocated
    (TIFF's just before calling it).
    """
    sizes = []
    original = ImageFile.ImageFile.load_prepare

    def spy(self):
        sizes.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load_prepare", spy)
    return sizes


@pytest.fixture(scope="module")
def eager_keras():
    """Keras's steps run eagerly, for tests that fit many small networks on a few images each.

    Tracing each new network's training step into a graph takes longer than running its few
    steps; the graph itself is what the other tests exercise.
    """
    import tensorflow as tf

    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)
