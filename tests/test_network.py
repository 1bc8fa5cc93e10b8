"""The Keras network behind CNNClassifier: the tutorial layout, blocks, any image size."""

import keras
import numpy as np
import pytest

from skimgclf._network import build_network

TUTORIAL = {"filters": (32, 64), "kernel_size": 3, "pool_size": 2, "dropout": 0.25,
            "dense_units": 128, "dense_dropout": 0.5, "batch_norm": False, "optimizer": "adam",
            "learning_rate": 0.001}
TINY = {**TUTORIAL, "filters": (4,), "dense_units": 8}


def test_default_is_the_tutorial_network():
    model = build_network((28, 28, 1), 10, **TUTORIAL)
    layers = [(type(layer).__name__, layer.output.shape[1:]) for layer in model.layers[1:]]
    assert layers == [
        ("Conv2D", (26, 26, 32)), ("Conv2D", (24, 24, 64)), ("MaxPooling2D", (12, 12, 64)),
        ("Dropout", (12, 12, 64)), ("Flatten", (9216,)), ("Dense", (128,)),
        ("Dropout", (128,)), ("Dense", (10,)),
    ]
    assert model.count_params() == 1_199_882  # the tutorial's parameter count
    assert model.layers[-1].activation is keras.activations.softmax
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.001)
    assert model.loss == "sparse_categorical_crossentropy"


@pytest.mark.parametrize("image_shape", [(1, 1, 1), (1, 2, 1), (2, 2, 3), (1, 20, 1),
                                         (3, 1, 1), (5, 5, 1)])
def test_images_smaller_than_kernels_and_pools_go_through(image_shape):
    model = build_network(image_shape, 3, **{**TUTORIAL, "filters": (4, 4, 4)})
    assert model.predict(np.zeros((2, *image_shape)), verbose=0).shape == (2, 3)


def test_kernels_are_clipped_per_side():
    model = build_network((1, 20, 1), 2, **TINY)
    conv, pool = model.layers[1], model.layers[2]
    assert conv.kernel_size == (1, 3)
    assert pool.pool_size == (1, 2)


def test_optional_layers_are_left_out():
    model = build_network((8, 8, 1), 2, **{**TINY, "dropout": 0, "dense_units": 0})
    names = [type(layer).__name__ for layer in model.layers[1:]]
    assert names == ["Conv2D", "MaxPooling2D", "Flatten", "Dense"]


def test_blocks_with_batch_norm():
    # Lists, as filters come back from a saved model's JSON.
    model = build_network((28, 28, 1), 10, **{**TUTORIAL, "filters": [[4, 4], [8]],
                                              "batch_norm": True})
    layers = [(type(layer).__name__, layer.output.shape[1:]) for layer in model.layers[1:]]
    assert layers == [
        ("Conv2D", (26, 26, 4)), ("BatchNormalization", (26, 26, 4)), ("ReLU", (26, 26, 4)),
        ("Conv2D", (24, 24, 4)), ("BatchNormalization", (24, 24, 4)), ("ReLU", (24, 24, 4)),
        ("MaxPooling2D", (12, 12, 4)), ("Dropout", (12, 12, 4)),
        ("Conv2D", (10, 10, 8)), ("BatchNormalization", (10, 10, 8)), ("ReLU", (10, 10, 8)),
        ("MaxPooling2D", (5, 5, 8)), ("Dropout", (5, 5, 8)),
        ("Flatten", (200,)), ("Dense", (128,)), ("Dropout", (128,)), ("Dense", (10,)),
    ]
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    # The normalisation's shift replaces the bias; the ReLU comes after it.
    assert all(not conv.use_bias and conv.activation is keras.activations.linear
               for conv in convolutions)


def test_one_block_is_the_flat_filters():
    flat = build_network((12, 12, 1), 2, **{**TINY, "filters": (4, 4)})
    nested = build_network((12, 12, 1), 2, **{**TINY, "filters": ((4, 4),)})
    assert ([layer.output.shape for layer in flat.layers]
            == [layer.output.shape for layer in nested.layers])


@pytest.mark.parametrize("image_shape", [(1, 1, 1), (1, 20, 1), (3, 3, 1)])
def test_blocks_on_images_smaller_than_their_pools(image_shape):
    model = build_network(image_shape, 3, **{**TUTORIAL, "filters": ((4,), (4,), (4,)),
                                             "batch_norm": True})
    assert model.predict(np.zeros((2, *image_shape)), verbose=0).shape == (2, 3)


def test_optimizer_by_class_and_learning_rate():
    model = build_network((8, 8, 1), 2, **{**TINY, "optimizer": keras.optimizers.SGD,
                                           "learning_rate": 0.5})
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.5)


@pytest.mark.parametrize(("override", "error", "match"), [
    ({"optimizer": keras.optimizers.Adam()}, TypeError, "name or the class"),
    ({"kernel_size": (3, 0)}, ValueError, "kernel_size"),
    ({"pool_size": (2, 2, 2)}, ValueError, "pool_size"),
    ({"filters": (8, 0)}, ValueError, "filters"),
    ({"filters": ((8,), 8)}, ValueError, "blocks"),
    ({"filters": ((8, 0),)}, ValueError, "filters"),
    ({"filters": ("8",)}, ValueError, "filters"),
])
def test_bad_settings_are_named(override, error, match):
    with pytest.raises(error, match=match):
        build_network((8, 8, 1), 2, **{**TINY, **override})
