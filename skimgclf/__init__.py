"""skimgclf: scikit-learn-compatible image classification.

``ImageFolderLoader`` turns a table of image names into an array of pixels and
``CNNClassifier`` is a convolutional network with the scikit-learn estimator API; both slot
into a ``Pipeline``.
"""

from importlib.metadata import version

from .loader import ImageFolderLoader, read_class_folders

__version__ = version("skimgclf")
__all__ = ["CNNClassifier", "ImageFolderLoader", "read_class_folders"]


def __getattr__(name):
    # CNNClassifier pulls in Keras and TensorFlow (~5 s); loading images or the CLI's --help
    # must not pay for that, so it is imported on first use.
    if name == "CNNClassifier":
        from .classifier import CNNClassifier

        return CNNClassifier
    raise AttributeError(f"module 'skimgclf' has no attribute {name!r}")
