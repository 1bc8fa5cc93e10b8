"""The small real Fashion-MNIST sample that ships inside the package."""

from importlib import resources

import numpy as np

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def load_fashion_mnist_sample():
    """Load the Fashion-MNIST sample shipped with skimgclf.

    4,000 training and 1,000 test images, balanced over the 10 classes, drawn from the official
    files (MIT licence, Zalando SE; see ``skimgclf/datasets/data/README.md``).

    Returns
    -------
    (x_train, y_train), (x_test, y_test) : tuple of tuple of ndarray
        ``x_*`` are uint8 arrays of shape ``(n, 28, 28)``, ``y_*`` uint8 labels 0–9; the names
        of the labels are :data:`FASHION_MNIST_CLASSES`.
    """
    source = resources.files(__package__) / "data" / "fashion_mnist_sample.npz"
    with resources.as_file(source) as path, np.load(path) as data:
        return (data["x_train"], data["y_train"]), (data["x_test"], data["y_test"])
