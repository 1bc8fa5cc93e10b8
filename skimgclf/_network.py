"""The network behind ``CNNClassifier``, built from the estimator's parameters.

Either the tutorial's convolutional network, or a pretrained backbone (``_backbones.py``) with a
small head; in front of either, random augmentation layers, active in training only.
"""

import random
from collections.abc import Iterable
from numbers import Integral

from ._backbones import backbone_features, backbone_of
from ._backend import keras
from ._precision import network_precision, precision_scope

#: The presets of ``augment``: Keras's random layers, as ``{kind: amount}``.
AUGMENT_PRESETS = {
    "flip": {"flip": "horizontal"},
    "light": {"flip": "horizontal", "translation": 0.05, "rotation": 0.03},
    "standard": {"flip": "horizontal", "rotation": 0.05, "zoom": 0.1, "translation": 0.1,
                 "contrast": 0.1},
}
#: The kinds of augmentation a dict given as ``augment`` may name.
AUGMENT_KINDS = ("flip", "rotation", "zoom", "translation", "contrast")


def build_network(image_shape, n_classes, *, filters, kernel_size, pool_size, dropout,
                  dense_units, dense_dropout, batch_norm, optimizer, learning_rate,
                  backbone=None, weights=None, augment=None, precision="float32", seed=None):
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
    backbone : str or None, default=None
        A backbone of ``_backbones.BACKBONES`` in place of the convolutions; its pooled
        features go through ``dropout``, then the dense layer as below. ``filters``,
        ``kernel_size``, ``pool_size`` and ``batch_norm`` are then unused.
    weights : {"imagenet"}, str, path-like or None, default=None
        The backbone's starting weights.
    augment : str, dict or None, default=None
        A preset of :data:`AUGMENT_PRESETS` or ``{kind: amount}`` of :data:`AUGMENT_KINDS`:
        random layers in front of the network, which only training runs through.
    precision : {"float32", "mixed_bfloat16", "mixed_float16"}, default="float32"
        The Keras dtype policy of the layers. The augmentation layers and the softmax layer
        compute in float32 whatever it is, so that images pass outside training unchanged and
        the loss and the probabilities are float32.
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

    with precision_scope(precision):
        inputs = keras.Input(shape=image_shape)
        x = _augmentation(inputs, augment, layer_seed)
        if backbone is None:
            x = _convolutions(x, image_shape, filters=filters, kernel_size=kernel_size,
                              pool_size=pool_size, dropout=dropout, batch_norm=batch_norm,
                              layer_seed=layer_seed)
        else:
            x, backbone_model = backbone_features(x, backbone, weights)
            if dropout:
                x = keras.layers.Dropout(dropout, seed=layer_seed())(x)
        if dense_units:
            x = keras.layers.Dense(int(dense_units), activation="relu",
                                   kernel_initializer=_glorot(layer_seed()))(x)
            if dense_dropout:
                x = keras.layers.Dropout(dense_dropout, seed=layer_seed())(x)
        outputs = keras.layers.Dense(n_classes, activation="softmax", dtype="float32",
                                     kernel_initializer=_glorot(layer_seed()))(x)
        model = keras.Model(inputs, outputs)
    if backbone is not None and weights is not None:
        # Pretrained, the backbone first stays as it is while the head learns.
        backbone_model.trainable = False
    compile_network(model, optimizer, learning_rate)
    return model


def compile_network(model, optimizer, learning_rate):
    """Compile ``model`` for training with a fresh optimizer, as after building or unfreezing."""
    optimizer = _make_optimizer(optimizer, learning_rate)
    if network_precision(model) == "mixed_float16":
        # Small float16 gradients would round to zero; Keras wraps the optimizer only for a
        # model built under the policy, not for one loaded from a file.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer,
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # Created now, eagerly, the optimizer's slots stay out of TensorFlow's traced training step,
    # whose variable-initialisation graphs TensorFlow keeps after the model is gone.
    model.optimizer.build(model.trainable_variables)


def set_trainable(model, trainable_layers):
    """Let the top ``trainable_layers`` layers of the backbone of ``model`` train.

    ``"all"`` unfreezes the whole backbone, 0 freezes it. Its batch normalisation layers stay
    frozen, so that they keep normalising with the statistics they learnt: a frozen
    BatchNormalization runs in inference mode, and in a Keras 3 functional model that is the
    way to keep it there (the outer call's ``training`` overrides a nested call's). Returns
    whether anything changed, which then needs the model compiled again.
    """
    backbone = backbone_of(model)
    layers = backbone.layers
    n = len(layers) if trainable_layers == "all" else int(trainable_layers)
    wanted = [index >= len(layers) - n
              and not isinstance(layer, keras.layers.BatchNormalization)
              for index, layer in enumerate(layers)]
    if backbone.trainable == any(wanted) and all(
            layer.trainable == flag for layer, flag in zip(layers, wanted, strict=True)):
        return False
    backbone.trainable = any(wanted)
    for layer, flag in zip(layers, wanted, strict=True):
        layer.trainable = flag
    return True


def _augmentation(x, augment, layer_seed):
    if augment is None:
        return x
    amounts = AUGMENT_PRESETS[augment] if isinstance(augment, str) else augment
    # One order whatever the dict's: geometric changes, then the light.
    for kind in AUGMENT_KINDS:
        amount = amounts.get(kind)
        if not amount:
            continue
        # In float32 whatever the precision: cheap, and outside training they then pass the
        # images on exactly as they are; the first layer that computes casts them.
        options = {"seed": layer_seed(), "dtype": "float32"}
        if kind == "flip":
            x = keras.layers.RandomFlip(amount, **options)(x)
        elif kind == "rotation":
            x = keras.layers.RandomRotation(amount, fill_mode="reflect", **options)(x)
        elif kind == "zoom":
            x = keras.layers.RandomZoom(amount, fill_mode="reflect", **options)(x)
        elif kind == "translation":
            x = keras.layers.RandomTranslation(amount, amount, fill_mode="reflect", **options)(x)
        else:
            x = keras.layers.RandomContrast(amount, value_range=(0, 1), **options)(x)
    return x


def _convolutions(x, image_shape, *, filters, kernel_size, pool_size, dropout, batch_norm,
                  layer_seed):
    height, width = image_shape[:2]
    kernel_h, kernel_w = _pair(kernel_size, "kernel_size")
    pool_h, pool_w = _pair(pool_size, "pool_size")
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
    return keras.layers.Flatten()(x)


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
