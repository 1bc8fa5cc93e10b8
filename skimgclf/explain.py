"""Why a network says what it says: Grad-CAM heat maps over the images it classifies.

Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV 2017) weighs each channel of a convolutional feature map by
the mean gradient of a class's score over it; the positive part of the weighted sum shows where
the evidence for that class lies. It needs the TensorFlow backend, for its ``GradientTape``.
"""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._backend import keras, keras_session
from ._batches import scaled

# The layers that end the convolutional part: the feature map is what goes into them.
_FLATTENING = (keras.layers.Flatten, keras.layers.GlobalAveragePooling2D)


def grad_cam(estimator, X, y=None, *, layer=None):
    """Grad-CAM heat maps of a fitted CNNClassifier over images ``X``.

    The map of an image is computed at the resolution of the network's last convolutional
    feature map (for the tutorial network the last convolution's activation, for a backbone
    its output) and resized to the image. The score is the class's pre-softmax output, as in
    the paper. Augmentation and test-time augmentation play no part: the network sees each
    image as given.

    Parameters
    ----------
    estimator : CNNClassifier
        A fitted classifier. For a pipeline, pass its last step and the images its earlier
        steps make: ``grad_cam(pipe[-1], pipe[:-1].transform(table))``.
    X : array-like of shape (n_samples, height, width[, channels])
        Images as ``estimator.predict`` takes them: floats in [0, 1] or 8-bit pixels.
    y : array-like of shape (n_samples,), default=None
        The class to explain for each image, among ``estimator.classes_``: the true label, to
        see what the network found of it. None explains the predicted class.
    layer : str, default=None
        Name of a layer of ``estimator.model_`` with a 4-D output (batch, height, width,
        channels), or of its backbone (such as ``"MobileNetV3Small"``), to take the feature
        map from; None takes the last one before the network pools or flattens it.

    Returns
    -------
    ndarray of shape (n_samples, height, width), float32
        One map per image, in [0, 1]: 1 where the evidence is strongest, 0 where there is
        none (an image with no positive evidence at all has a map of zeros).

    Raises
    ------
    ValueError
        If a label of ``y`` is not a class of the estimator, ``y`` and ``X`` differ in
        length, or ``layer`` does not name a layer with a 4-D output.
    RuntimeError
        On a Keras backend other than TensorFlow.

    Examples
    --------
    >>> from skimgclf import CNNClassifier, grad_cam
    >>> from skimgclf.datasets import load_fashion_mnist_sample
    >>> (x_train, y_train), (x_test, y_test) = load_fashion_mnist_sample()
    >>> clf = CNNClassifier(epochs=1, random_state=0).fit(x_train, y_train)
    >>> grad_cam(clf, x_test[:2]).shape
    (2, 28, 28)
    """
    check_is_fitted(estimator)
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"grad_cam needs Keras's TensorFlow backend; this is "
                           f"{keras.backend.backend()!r} (set KERAS_BACKEND=tensorflow)")
    X, _ = estimator._validate_data(X)
    network = estimator.model_
    features = _feature_map(network, layer)
    targets = None if y is None else _class_indices(estimator.classes_, y, len(X))
    explainer = keras.Model(network.input, [features, network.layers[-1].input])
    maps = []
    with keras_session(estimator.device):
        for start in range(0, len(X), estimator.batch_size):
            batch = slice(start, start + estimator.batch_size)
            pixels = scaled(X[batch]) if X.dtype == np.uint8 else X[batch]
            maps.append(_batch_maps(explainer, network.layers[-1], pixels,
                                    None if targets is None else targets[batch]))
    return np.concatenate(maps) if maps else np.zeros((0, *X.shape[1:3]), np.float32)


def _feature_map(network, layer):
    """The tensor of ``network``'s graph whose gradients Grad-CAM weighs."""
    if layer is not None:
        names = [item.name for item in network.layers]
        if layer not in names:
            raise ValueError(f"layer={layer!r} is not a layer of the network; its layers are "
                             f"{', '.join(map(repr, names))}")
        found = network.layers[names.index(layer)]
        if isinstance(found, keras.Model):
            # A backbone's own output tensor belongs to its graph, not to this network's.
            return network.layers[names.index(layer) + 1].input
        if len(found.output.shape) != 4:
            raise ValueError(f"layer={layer!r} has an output of shape {found.output.shape}; "
                             f"Grad-CAM needs a 4-D feature map (batch, height, width, "
                             f"channels), such as a convolution's")
        return found.output
    end = next(index for index, item in enumerate(network.layers)
               if isinstance(item, _FLATTENING))
    convolutions = [item for item in network.layers[:end]
                    if isinstance(item, (keras.layers.Conv2D, keras.layers.ReLU))]
    # A backbone is one layer of the network, a network itself: its output in this network's
    # graph is the input of the pooling after it.
    return convolutions[-1].output if convolutions else network.layers[end].input


def _class_indices(classes, y, n):
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"y must hold one label per image: {n} labels; got shape {y.shape}")
    index = {label: i for i, label in enumerate(classes.tolist())}
    unknown = sorted({label for label in y.tolist() if label not in index}, key=str)
    if unknown:
        raise ValueError(f"y holds labels that are not classes of the estimator: "
                         f"{', '.join(map(repr, unknown[:5]))}; its classes are "
                         f"{', '.join(map(repr, classes.tolist()[:20]))}")
    return np.array([index[label] for label in y.tolist()])


def _batch_maps(explainer, head, pixels, targets):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        features, hidden = explainer(pixels, training=False)
        # The class scores before the softmax, as in the paper: after it, a confident
        # prediction's gradient nearly vanishes. A network ending in a separate softmax layer
        # hands those scores to it.
        scores = _pre_activation(head, hidden) if isinstance(head, keras.layers.Dense) else hidden
        if targets is None:
            targets = tf.argmax(scores, axis=1)
        chosen = tf.gather(scores, targets, axis=1, batch_dims=1)
    gradients = tape.gradient(chosen, features)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cams = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1, keepdims=True))
    cams = tf.image.resize(cams, pixels.shape[1:3], method="bilinear")[..., 0].numpy()
    peaks = cams.reshape(len(cams), -1).max(axis=1)
    return (cams / np.where(peaks > 0, peaks, 1)[:, None, None]).astype(np.float32)


def _pre_activation(head, hidden):
    return keras.ops.matmul(hidden, head.kernel) + (0 if head.bias is None else head.bias)
