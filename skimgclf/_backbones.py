"""Pretrained networks of ``keras.applications``, as the front of CNNClassifier and ImageEmbedder.

Each backbone is built without its classification top, behind the layers that take skimgclf's
images to what it expects: pixels in [0, 1] (the loader's output, or 8-bit pixels scaled a batch
at a time) scaled to its own range, grey images repeated to three channels. Only Keras's own
layers are used, so a saved network loads in safe mode. Keras is imported by the functions that
build, so that the command line can read the table of backbones before TensorFlow starts.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

# The momentum of batch normalisation's running statistics when a backbone trains from random
# weights: they settle within a few dozen steps, as with PyTorch's default (0.1 there).
_SCRATCH_MOMENTUM = 0.9


@dataclass(frozen=True)
class Backbone:
    """How to build one of ``keras.applications``'s networks for skimgclf's images."""

    #: The function of ``keras.applications`` that builds it.
    constructor: str
    #: ``(scale, offset)`` taking pixels in [0, 1] to the range the network's first layer takes.
    rescale: tuple
    #: Keyword arguments of the constructor beyond the shape and the weights.
    options: tuple = ()
    #: The side of the images its ImageNet weights were trained on.
    native_size: int = 224
    #: The smallest side it takes.
    min_size: int = 32


# The networks whose preprocessing is built in (include_preprocessing) take 0-255 pixels;
# ResNetV2's preprocess_input takes them to [-1, 1], done here with a Rescaling layer.
BACKBONES = {
    "mobilenet_v3_small": Backbone("MobileNetV3Small", (255.0, 0.0),
                                   (("include_preprocessing", True),)),
    "mobilenet_v3_large": Backbone("MobileNetV3Large", (255.0, 0.0),
                                   (("include_preprocessing", True),)),
    "efficientnet_v2_b0": Backbone("EfficientNetV2B0", (255.0, 0.0),
                                   (("include_preprocessing", True),)),
    "resnet50_v2": Backbone("ResNet50V2", (2.0, -1.0)),
    "convnext_tiny": Backbone("ConvNeXtTiny", (255.0, 0.0), (("include_preprocessing", True),)),
}


def check_backbone(name, image_shape):
    """Refuse an unknown backbone, or images it cannot take, naming what it needs.

    Returns
    -------
    Backbone
    """
    if name not in BACKBONES:
        raise ValueError(f"backbone={name!r} is not one of skimgclf's backbones: "
                         f"{', '.join(sorted(BACKBONES))}")
    spec = BACKBONES[name]
    height, width, channels = image_shape
    if min(height, width) < spec.min_size:
        raise ValueError(
            f"backbone={name!r} takes images of at least {spec.min_size}×{spec.min_size} "
            f"pixels, but these are {height}×{width}; load them larger, e.g. "
            f"target_size=({spec.native_size}, {spec.native_size}) (its ImageNet weights were "
            f"trained at {spec.native_size}×{spec.native_size})")
    if channels not in (1, 3):
        raise ValueError(f"backbone={name!r} takes grey or colour images (1 or 3 channels), "
                         f"not {channels}: load them with color_mode='rgb'")
    return spec


def backbone_features(images, name, weights):
    """Apply the backbone ``name`` to ``images``; return its pooled features and the backbone.

    Parameters
    ----------
    images : KerasTensor of shape (None, height, width, channels)
        Pixels in [0, 1], one or three channels.
    name : str
        A key of :data:`BACKBONES`.
    weights : {"imagenet"}, str, path-like or None
        ImageNet's weights through Keras's download and cache, a weights file, or None for
        random ones.

    Returns
    -------
    features : KerasTensor
        The globally averaged features of the backbone's last block.
    backbone : keras.Model
        The backbone itself, whose layers fine-tuning freezes and unfreezes (see
        :func:`backbone_of`).
    """
    from ._backend import keras

    image_shape = tuple(images.shape[1:])
    spec = check_backbone(name, image_shape)
    x = images
    if image_shape[-1] == 1:
        x = keras.layers.Concatenate(name="grey_to_rgb")([x, x, x])
    x = keras.layers.Rescaling(*spec.rescale, name="to_backbone_range")(x)
    backbone = _build_backbone(name, spec, (*image_shape[:2], 3), weights)
    x = backbone(x)
    return keras.layers.GlobalAveragePooling2D(name="pool")(x), backbone


def backbone_of(network):
    """The backbone inside ``network``: its one layer that is a network itself."""
    from ._backend import keras

    return next(layer for layer in network.layers if isinstance(layer, keras.Model))


def _build_backbone(name, spec, shape, weights):
    from ._backend import keras

    constructor = getattr(keras.applications, spec.constructor)
    options = dict(spec.options)
    if weights is None:
        network = constructor(include_top=False, weights=None, input_shape=shape, **options)
        # Trained from scratch, its batch normalisation must learn statistics that predictions
        # can use: ImageNet's 0.999 averages them over thousands of steps, so that after a few
        # hundred they are still mostly their starting values and predictions are near chance.
        for layer in network.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = _SCRATCH_MOMENTUM
        return network
    if weights == "imagenet":
        try:
            return constructor(include_top=False, weights=weights, input_shape=shape, **options)
        except Exception as exc:
            raise _download_error(name, exc) from exc
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"weights={os.fspath(weights)!r}: no such file; give the path "
                                f"of a weights file of {name} without its top, or 'imagenet'")
    network = constructor(include_top=False, weights=None, input_shape=shape, **options)
    try:
        network.load_weights(path)
    except Exception as exc:
        raise ValueError(f"weights={os.fspath(weights)!r} cannot be loaded into {name} without "
                         f"its classification top: {str(exc).splitlines()[0]}") from exc
    return network


def _download_error(name, exc):
    """The error for ImageNet weights Keras could not fetch: which file, where it goes."""
    url = re.search(r"https?://\S+?(?=[\s:]|$)", str(exc))
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
    if url:
        file_name = url.group(0).rsplit("/", 1)[-1]
        where = f"put {file_name} (from {url.group(0)}) in {cache}"
    else:
        where = f"put the weights file that Keras downloads for it in {cache}"
    return OSError(f"the ImageNet weights of backbone={name!r} could not be downloaded "
                   f"({type(exc).__name__}: {str(exc).splitlines()[0]}); {where}, where Keras "
                   "looks before downloading, or pass weights=PATH with the path of that file, "
                   "or weights=None to start from random weights")
