"""The convolutional network behind ``CNNClassifier``, built from the estimator's parameters."""

import random
from collections.abc import Iterable
from numbers import Integral

from ._backend import keras


def build_network(image_shape, n_classes, *, filters, kernel_size, pool_size, dropout,
                  dense_units, dense_dropout, batch_norm, optimizer, learning_rate, seed=None):
    """Build and compile the classifier's network.

    With the defaults of ``CNNClassifier`` this is the classic Keras tutorial network:
    Conv(32, 3×3) – Conv(64, 3×3) – MaxPool(2×2) – Dropout(0.25) – Flatten – Dense(128) –
    Dropout(0.5) – softmax, trained with Adam at a learning rate of 1e-3.

    ``filters`` given as blocks, e.g. ``((32, 32), (64, 64))``, repeat the convolutions – pool –
    dropout pattern once per block, each block's pool halving the image for the next.

    Kernels and pools are clipped to the image reaching them, per side, so that any image, even
    one pixel high, goes through every layer: a 1×20 row meets 1×3 kernels and a 1×2 pool, and a
    pool that would cover a single pixel is left out.

    Parameters
    ----------
    image_shape : tuple of int
        ``(height, width, channels)`` of one sample.
    n_classes : int
        Width of the softmax output.
    filters : sequence of int, or sequence of sequences of int
        One ReLU ``Conv2D`` with "valid" padding per int, in order. Ints make one block, followed
        by the max pooling and dropout; sequences of ints make one such block each.
    kernel_size, pool_size : int or pair of int
        Convolution kernel and max-pooling window, before clipping to the image.
    dropout, dense_dropout : float
        Dropout rate after each convolutional block and after the dense layer; 0 leaves it out.
    dense_units : int
        Width of the hidden ReLU dense layer; 0 leaves it out.
    batch_norm : bool
        Put a ``BatchNormalization`` between each convolution and its ReLU (the convolution
        then has no bias, which the normalisation's shift would cancel).
    optimizer : str or keras.optimizers.Optimizer subclass
        Optimizer name (``"adam"``, ``"sgd"``, ...) or class, created with ``learning_rate``.
    learning_rate : float
        Learning rate of the optimizer.
    seed : int or None, default=None
        Seeds the weights and the dropout masks. None lets Keras draw them from Python's
        global ``random`` module.

    Returns
    -------
    keras.Model
        The compiled model: sparse categorical cross-entropy loss, accuracy metric.
    """
    # Keras draws each unseeded layer's seed from Python's global `random`, which other threads
    # of the process may use meanwhile (a Dask worker's event loop does). A private generator
    # draws the same seeds as `random.seed(seed)` would, in the same order, out of their reach.
    generator = None if seed is None else random.Random(seed)

    def layer_seed():
        # Keras's own draw for an unseeded layer (keras.random.make_default_seed).
        return None if generator is None else generator.randint(1, int(1e9))

    height, width = image_shape[:2]
    kernel_h, kernel_w = _pair(kernel_size, "kernel_size")
    pool_h, pool_w = _pair(pool_size, "pool_size")
    inputs = keras.Input(shape=image_shape)
    x = inputs
    for block in _blocks(filters):
        for n_filters in block:
            kernel = (min(kernel_h, height), min(kernel_w, width))
            x = keras.layers.Conv2D(n_filters, kernel, use_bias=not batch_norm,
                                    activation=None if batch_norm else "relu",
                                    kernel_initializer=_glorot(layer_seed()))(x)
            if batch_norm:
                x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
            height, width = height - kernel[0] + 1, width - kernel[1] + 1
        pool = (min(pool_h, height), min(pool_w, width))
        if pool != (1, 1):
            x = keras.layers.MaxPooling2D(pool)(x)
            height, width = height // pool[0], width // pool[1]
        if dropout:
            x = keras.layers.Dropout(dropout, seed=layer_seed())(x)
    x = keras.layers.Flatten()(x)
    if dense_units:
        x = keras.layers.Dense(int(dense_units), activation="relu",
                               kernel_initializer=_glorot(layer_seed()))(x)
        if dense_dropout:
            x = keras.layers.Dropout(dense_dropout, seed=layer_seed())(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax",
                                 kernel_initializer=_glorot(layer_seed()))(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=_make_optimizer(optimizer, learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # Created now, eagerly, the optimizer's slots stay out of TensorFlow's traced training step,
    # whose variable-initialisation graphs TensorFlow keeps after the model is gone.
    model.optimizer.build(model.trainable_variables)
    return model


def _blocks(filters):
    # Ints are the one block of the tutorial's network; sequences of ints are one block each.
    blocks = list(filters)
    if all(isinstance(entry, Integral) for entry in blocks):
        blocks = [blocks]
    if not all(isinstance(block, Iterable) and not isinstance(block, str)
               and all(isinstance(n, Integral) and n >= 1 for n in block) for block in blocks):
        raise ValueError(
            "filters must hold positive ints, one per Conv2D, or blocks of them such as "
            f"((32, 32), (64, 64)), each block followed by a pool; got {filters!r}")
    return [[int(n) for n in block] for block in blocks]


def _glorot(seed):
    # Keras's default kernel initializer, seeded.
    return keras.initializers.GlorotUniform(seed=seed)


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
