"""Images as the estimators take them: checked, reshaped, 8-bit pixels left 8-bit.

``CNNClassifier`` and ``ImageEmbedder`` take the same input, with the same messages: images of
shape ``(n, height, width[, channels])``, or rows of pixels reshaped by ``input_shape``.
"""

import numpy as np
from scipy.sparse import issparse
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from ._backend import keras


def check_images(estimator, X, y=None, *, reset):
    """``X`` as an array of images (and ``y`` checked as class labels, when given).

    With ``reset``, sets ``n_features_in_`` and ``image_shape_`` of ``estimator`` (which has
    an ``input_shape`` parameter); else checks ``X`` against them.
    """
    if issparse(X):
        raise TypeError(
            f"{type(estimator).__name__} does not accept sparse input: images are dense. "
            "Convert X with X.toarray() first.")
    check_params = {"allow_nd": True, "ensure_2d": False, "dtype": keras.backend.floatx()}
    if getattr(X, "dtype", None) == np.uint8:
        # 8-bit pixels stay 8-bit and are scaled batch by batch (see _batches.py): a memory
        # map of the loader's cache is never copied whole into memory.
        check_params["dtype"] = None
    if y is not None:
        X, y = validate_data(estimator, X, y, reset=reset, **check_params)
        check_classification_targets(y)
    else:
        X = validate_data(estimator, X, reset=reset, **check_params)
    return _as_images(estimator, X, reset), y


def _as_images(estimator, X, reset):
    name = type(estimator).__name__
    if X.ndim not in (2, 3, 4):
        raise ValueError(
            f"{name} takes images as an array of shape (n_samples, height, width[, channels]) "
            f"or rows of pixels (n_samples, n_features); got an array of shape {X.shape}. "
            "Reshape your data: pass a single sample x as x[np.newaxis].")
    n_features = int(np.prod(X.shape[1:]))
    if reset:
        estimator.n_features_in_ = n_features
        estimator.image_shape_ = _image_shape(X.shape[1:], estimator.input_shape)
    elif n_features != estimator.n_features_in_:
        message = (f"X has {n_features} features, but {name} is expecting "
                   f"{estimator.n_features_in_} features as input.")
        if X.ndim > 2:
            message += (f" It holds images of shape {X.shape[1:]} but the network takes "
                        f"{estimator.image_shape_}: load them at the size used in fit.")
        raise ValueError(message)
    elif X.ndim > 2 and X.shape[1:3] != estimator.image_shape_[:2]:
        raise ValueError(f"X holds images of shape {X.shape[1:]}, but {name} was fitted on "
                         f"images of shape {estimator.image_shape_}.")
    return X.reshape((len(X), *estimator.image_shape_))


def _image_shape(sample_shape, input_shape):
    if input_shape is not None:
        shape = tuple(int(side) for side in input_shape)
        shape = shape + (1,) if len(shape) == 2 else shape
        if len(shape) != 3 or int(np.prod(shape)) != int(np.prod(sample_shape)):
            raise ValueError(
                f"input_shape={input_shape!r} must be (height, width) or (height, width, "
                f"channels) holding the {int(np.prod(sample_shape))} values of each sample of "
                f"X (shape {sample_shape}).")
        return shape
    if len(sample_shape) == 3:
        return tuple(sample_shape)
    if len(sample_shape) == 2:
        return (*sample_shape, 1)
    side = int(np.sqrt(sample_shape[0]))
    if side * side == sample_shape[0]:
        return (side, side, 1)
    return (1, sample_shape[0], 1)
