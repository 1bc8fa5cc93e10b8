"""skimgclf: scikit-learn-compatible image classification.

``ImageFolderLoader`` turns a table of image names into an array of pixels and
``CNNClassifier`` is a convolutional network with the scikit-learn estimator API;
``ImageEmbedder`` turns images into the features of a pretrained network, for any
scikit-learn model. All slot into a ``Pipeline``. ``grad_cam`` shows where in each image a
fitted ``CNNClassifier`` found its answer; ``find_label_issues`` ranks the training images
whose labels are likely wrong, and ``export_model`` writes a fitted classifier as one ONNX or
TFLite file that runs without skimgclf.
"""

from importlib import import_module
from importlib.metadata import version

__version__ = version("skimgclf")
__all__ = ["CNNClassifier", "ImageEmbedder", "ImageFolderLoader", "export_model",
           "find_label_issues", "grad_cam", "read_class_folders"]

# Each public name is imported on first use: CNNClassifier pulls in Keras and TensorFlow
# (~5 s) and the loader scikit-learn and pandas (~1-2 s), which neither loading images nor
# the CLI's --help should pay for.
_MODULES = {"CNNClassifier": ".classifier", "ImageEmbedder": ".embedder",
            "ImageFolderLoader": ".loader", "read_class_folders": ".loader",
            "find_label_issues": ".label_issues", "export_model": ".export",
            "grad_cam": ".explain"}


def __getattr__(name):
    if name in _MODULES:
        return getattr(import_module(_MODULES[name], __name__), name)
    raise AttributeError(f"module 'skimgclf' has no attribute {name!r}")
