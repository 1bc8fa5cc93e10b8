"""The convolutional network behind ``CNNClassifier``, built from the estimator's parameters."""

from numbers import Integral

import keras


def build_network(image_shape, n_classes, *, filters, kernel_size, pool_size, dropout,
                  dense_units, dense_dropout, optimizer, learning_rate):
    """Build and compile the classifier's network.

    With the defaults of ``CNNClassifier`` this is the classic Keras tutorial network:
    Conv(32, 3×3) – Conv(64, 3×3) – MaxPool(2×2) – Dropout(0.25) – Flatten – Dense(128) –
    Dropout(0.5) – softmax, trained with Adam at a learning rate of 1e-3.

    Kernels and pools are clipped to the image reaching them, per side, so that any image, even
    one pixel high, goes through every layer: a 1×20 row meets 1×3 kernels and a 1×2 pool, and a
    pool that would cover a single pixel is left out.

    Parameters
    ----------
    image_shape : tuple of int
        ``(height, width, channels)`` of one sample.
    n_classes : int
        Width of the softmax output.
    filters : sequence of int
        One ReLU ``Conv2D`` with "valid" padding per entry, in order.
    kernel_size, pool_size : int or pair of int
        Convolution kernel and max-pooling window, before clipping to the image.
    dropout, dense_dropout : float
        Dropout rate after the convolutional block and after the dense layer; 0 leaves it out.
    dense_units : int
        Width of the hidden ReLU dense layer; 0 leaves it out.
    optimizer : str or keras.optimizers.Optimizer subclass
        Optimizer name (``"adam"``, ``"sgd"``, ...) or class, created with ``learning_rate``.
    learning_rate : float
        Learning rate of the optimizer.

    Returns
    -------
    keras.Model
        The compiled model: sparse categorical cross-entropy loss, accuracy metric.
    """
    height, width = image_shape[:2]
    kernel_h, kernel_w = _pair(kernel_size, "kernel_size")
    inputs = keras.Input(shape=image_shape)
    x = inputs
    for n_filters in filters:
        if not (isinstance(n_filters, Integral) and n_filters >= 1):
            raise ValueError(f"filters must hold positive ints, one per Conv2D; got {filters!r}")
        kernel = (min(kernel_h, height), min(kernel_w, width))
        x = keras.layers.Conv2D(int(n_filters), kernel, activation="relu")(x)
        height, width = height - kernel[0] + 1, width - kernel[1] + 1
    pool_h, pool_w = _pair(pool_size, "pool_size")
    pool = (min(pool_h, height), min(pool_w, width))
    if pool != (1, 1):
        x = keras.layers.MaxPooling2D(pool)(x)
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Flatten()(x)
    if dense_units:
        x = keras.layers.Dense(int(dense_units), activation="relu")(x)
        if dense_dropout:
            x = keras.layers.Dropout(dense_dropout)(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=_make_optimizer(optimizer, learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # Created now, eagerly, the optimizer's slots stay out of TensorFlow's traced training step,
    # whose variable-initialisation graphs TensorFlow keeps after the model is gone.
    model.optimizer.build(model.trainable_variables)
    return model


def _pair(value, name):
    pair = (value, value) if isinstance(value, Integral) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, Integral) and v >= 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair of them; got {value!r}")
    return int(pair[0]), int(pair[1])


def _make_optimizer(optimizer, learning_rate):
    # A fresh optimizer per fit: an instance would carry its moments from one fit to the next.
    if isinstance(optimizer, str):
        optimizer = type(keras.optimizers.get(optimizer))
    if not (isinstance(optimizer, type) and issubclass(optimizer, keras.optimizers.Optimizer)):
        raise TypeError(
            "optimizer must be the name or the class of a Keras optimizer, e.g. 'adam' or "
            f"keras.optimizers.SGD, with its rate in learning_rate; got {optimizer!r}")
    return optimizer(learning_rate=learning_rate)
