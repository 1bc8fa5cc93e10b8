"""Colour photos generated from real images: a real item pasted on a crop of a real photo.

No photo data set can be downloaded where skimgclf is tested, so the pretrained backbones are
tested, benchmarked and shown on these: the backgrounds are crops of the two photos scikit-learn
ships (``sklearn.datasets.load_sample_images``), the objects are Fashion-MNIST or MNIST items.
"""

import colorsys
import math
import os
from functools import cache
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_images
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from .._constraints import Rule
from .._folders import replacing_folder
from ._competition import write_layout
from ._sample import load_fashion_mnist_sample

# Size of a background crop, as a fraction of the largest of the photo's shape that fits in the
# source once tilted; below 1, so that rounding never takes the crop outside the source.
_CROP_FRACTION = (0.3, 0.95)
_MAX_ROTATION = 10  # degrees, for the background; more would look like a tilted camera
_MAX_ITEM_ROTATION = 20  # degrees: small enough that no digit turns into another
# An item's grey level g sets its opacity min(1, 2g), so that its mid-grey parts are opaque
# rather than see-through, and its shade 0.3 + 0.7g of the tint, so that its texture shows.
_OPACITY_GAIN = 2.0
_SHADE_FLOOR = 0.3
_SUFFIX = ".jpg"
# The shipped sample holds 400 training and 100 test images per class.
_SAMPLE_PER_CLASS = {"train": 400, "test": 100}


def _is_range(kind, low, high):
    def predicate(value):
        return (isinstance(value, (tuple, list)) and len(value) == 2
                and all(isinstance(end, kind) and not isinstance(end, bool) for end in value)
                and low <= value[0] <= value[1] <= high)
    return predicate


_SIZE_RANGE = Rule(_is_range(Integral, 8, 4096),
                   "a (min, max) tuple of ints, 8 <= min <= max <= 4096 (pixels)")
_OBJECT_SCALE = Rule(_is_range(Real, 0.05, 1.0),
                     "a (min, max) tuple of floats, 0.05 <= min <= max <= 1 (fractions of the "
                     "photo's shorter side)")


@validate_params(
    {
        "images": ["array-like"],
        "labels": ["array-like"],
        "n_per_class": [None, Interval(Integral, 1, None, closed="left")],
        "size_range": [_SIZE_RANGE],
        "object_scale": [_OBJECT_SCALE],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_photos(images, labels, *, n_per_class=None, size_range=(96, 224),
                object_scale=(0.25, 0.6), random_state=0):
    """Make colour photos of varied sizes, each showing one item on a natural background.

    Each photo is a crop of one of scikit-learn's two sample photos (``china.jpg``,
    ``flower.jpg``) at a random place, size and slight tilt, perhaps mirrored, resized to a
    random height and width. One item of ``images`` is pasted on it, whole, at a random place,
    scale and slight tilt: its grey levels are the item's opacity and shading, in a random
    colour, so that neither colour nor position gives the class away.

    Parameters
    ----------
    images : array-like of shape (n_images, height, width) or (n_images, height, width, 1), \
            uint8
        Grey items, bright on black as in MNIST and Fashion-MNIST.
    labels : array-like of shape (n_images,)
        The label of each item, given to its photo.
    n_per_class : int or None, default=None
        Photos per label, of items drawn at random without replacement; None makes one photo
        of every item.
    size_range : tuple of (int, int), default=(96, 224)
        Smallest and largest height and width of the photos, in pixels; each photo's height and
        width are drawn independently within it.
    object_scale : tuple of (float, float), default=(0.25, 0.6)
        Smallest and largest size of the item as pasted, tilted (the longer side of the
        outline of its frame, such as MNIST's 28 × 28 pixels), as a fraction of the photo's
        shorter side.
    random_state : int, RandomState instance or None, default=0
        Draws the items, crops, sizes, places and colours. An int makes the same photos, bit
        for bit, on every call with the same versions of NumPy and Pillow.

    Returns
    -------
    photos : list of ndarray of shape (height, width, 3), uint8
        The photos, in the order of their items in ``images``.
    y : ndarray of shape (n_photos,)
        The label of each photo.

    Raises
    ------
    ValueError
        If ``images`` are not grey uint8 images, ``labels`` differ from them in length, or a
        label has fewer than ``n_per_class`` images.

    Notes
    -----
    ``object_scale`` sets the difficulty. Measured with 30 training photos per class of
    :func:`load_photos_sample`, loaded at 64 × 64, and 1,000 test photos: at the defaults,
    where a small item may sit anywhere, ``CNNClassifier(epochs=40)`` and a logistic
    regression on the pixels both score chance (0.09 and 0.08), while a small network with
    global pooling trained on 400 photos per class reaches about 0.45: the classes are there
    to be learned, from more photos or from pretrained features. With
    ``object_scale=(0.8, 1.0)`` the item nearly fills the photo and ``CNNClassifier`` scores
    0.20 (logistic regression: 0.13).

    See Also
    --------
    load_photos_sample : Photos of the shipped Fashion-MNIST sample, split for training and test.
    export_photo_folder : Write photos as JPEG files in a competition or class-folder layout.

    Examples
    --------
    >>> from skimgclf.datasets import load_fashion_mnist_sample, make_photos
    >>> (x_train, y_train), _ = load_fashion_mnist_sample()
    >>> photos, y = make_photos(x_train, y_train, n_per_class=2, random_state=0)
    >>> len(photos), photos[0].ndim, photos[0].dtype
    (20, 3, dtype('uint8'))
    >>> all(96 <= side <= 224 for photo in photos for side in photo.shape[:2])
    True
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be grey uint8 images of shape (n_images, height, width); "
                         f"got {images.dtype} of shape {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"labels must hold one label per image: got {len(images)} images and "
                         f"labels of shape {labels.shape}")
    random_state = check_random_state(random_state)
    chosen = (np.arange(len(images)) if n_per_class is None
              else _balanced(labels, n_per_class, random_state))
    backgrounds = _backgrounds()
    photos = [_photo(images[i], backgrounds, size_range, object_scale, random_state)
              for i in chosen]
    return photos, labels[chosen]


@validate_params(
    {
        "n_train_per_class": [Interval(Integral, 1, _SAMPLE_PER_CLASS["train"], closed="both")],
        "n_test_per_class": [Interval(Integral, 1, _SAMPLE_PER_CLASS["test"], closed="both")],
        "size_range": [_SIZE_RANGE],
        "object_scale": [_OBJECT_SCALE],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def load_photos_sample(*, n_train_per_class=30, n_test_per_class=20, size_range=(96, 224),
                       object_scale=(0.25, 0.6), random_state=0):
    """Make training and test photos of the Fashion-MNIST sample shipped with skimgclf.

    The training photos show items of the sample's training half, the test photos items of
    its test half, each balanced over the 10 classes; see :func:`make_photos` for how a photo
    is made.

    Parameters
    ----------
    n_train_per_class : int, default=30
        Training photos per class, at most 400.
    n_test_per_class : int, default=20
        Test photos per class, at most 100.
    size_range : tuple of (int, int), default=(96, 224)
        Smallest and largest height and width of the photos, in pixels.
    object_scale : tuple of (float, float), default=(0.25, 0.6)
        Smallest and largest size of the item, as a fraction of the photo's shorter side: the
        difficulty, as the Notes of :func:`make_photos` measure it.
    random_state : int, RandomState instance or None, default=0
        Draws both sets; an int makes the same photos, bit for bit, on every call.

    Returns
    -------
    (train_photos, y_train), (test_photos, y_test) : tuple of tuple
        Lists of uint8 RGB photos of shape (height, width, 3) and ndarrays of their labels,
        0-9, named by :data:`FASHION_MNIST_CLASSES`.

    See Also
    --------
    make_photos : Photos of any grey items, such as the full Fashion-MNIST or MNIST.

    Examples
    --------
    Two lines write a competition layout of colour photos:

    >>> from skimgclf.datasets import export_photo_folder, load_photos_sample
    >>> (train, y_train), (test, y_test) = load_photos_sample()
    >>> layout = export_photo_folder(train, y_train, "photos", test_photos=test)  # doctest: +SKIP
    >>> len(train), len(test)
    (300, 200)
    """
    random_state = check_random_state(random_state)
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist_sample()
    train = make_photos(x_train, y_train, n_per_class=n_train_per_class, size_range=size_range,
                        object_scale=object_scale, random_state=random_state)
    test = make_photos(x_test, y_test, n_per_class=n_test_per_class, size_range=size_range,
                       object_scale=object_scale, random_state=random_state)
    return train, test


@validate_params(
    {
        "photos": ["array-like"],
        "y": ["array-like"],
        "directory": [str, os.PathLike],
        "test_photos": [None, "array-like"],
        "layout": [StrOptions({"competition", "class_folders"})],
        "class_names": [None, list, tuple, dict],
        "quality": [Interval(Integral, 1, 95, closed="both")],
    },
    prefer_skip_nested_validation=True,
)
def export_photo_folder(photos, y, directory, *, test_photos=None, layout="competition",
                        class_names=None, quality=90):
    """Write photos as JPEG files, in the competition layout or one folder per class.

    ``layout="competition"`` writes what the "identify the apparel" challenges hand out, as
    :func:`export_competition_layout` does: ``train.csv`` (``id,label``) beside ``train/``
    holding ``<id>.jpg``, ids ``1, 2, …``; with ``test_photos``, also ``test.csv`` and
    ``test/``, ids continuing after the training ids, and ``sample_submission.csv`` listing
    the test ids with a placeholder label. Read it with
    ``ImageFolderLoader(layout.train_dir, suffix=".jpg", color_mode="rgb", target_size=…)``.

    ``layout="class_folders"`` writes photo ``i`` as ``<class>/<i + 1>.jpg``, to read with
    :func:`skimgclf.read_class_folders`.

    Parameters
    ----------
    photos : sequence of ndarray of shape (height, width, 3), uint8
        The photos, of any sizes, such as those of :func:`make_photos`.
    y : array-like of shape (n_photos,)
        The label of each photo.
    directory : str or path-like
        The folder to write. It is written whole: built beside its place and renamed into it
        once complete. An existing folder is replaced only when skimgclf wrote everything in
        it; any other non-empty folder is refused.
    test_photos : sequence of ndarray, default=None
        Unlabelled test photos; competition layout only.
    layout : {"competition", "class_folders"}, default="competition"
        The layout written.
    class_names : list, tuple or dict, default=None
        The name of each label, ``class_names[label]``, written in ``train.csv`` or as the
        class folders' names instead of the label itself, e.g.
        :data:`FASHION_MNIST_CLASSES`.
    quality : int, default=90
        JPEG quality, 1-95; Pillow advises against more, which adds size, not detail.

    Returns
    -------
    CompetitionLayout or pathlib.Path
        The paths of the competition layout (test paths are returned unwritten without
        ``test_photos``), or the folder of class folders.

    Raises
    ------
    ValueError
        If the photos are not RGB uint8 images, their number differs from that of ``y``,
        ``class_names`` lacks a label, ``test_photos`` are given for class folders, or a class
        name cannot be a folder's.
    FileExistsError
        If ``directory`` is a file, or a folder holding files that skimgclf did not write.

    See Also
    --------
    export_competition_layout : The same layout, of images all of one size, in any format.

    Examples
    --------
    >>> from skimgclf import ImageFolderLoader, read_class_folders
    >>> from skimgclf.datasets import export_photo_folder, load_photos_sample
    >>> (train, y_train), (test, _) = load_photos_sample(n_train_per_class=3, n_test_per_class=2)
    >>> layout = export_photo_folder(train, y_train, "photos", test_photos=test)  # doctest: +SKIP
    >>> root = export_photo_folder(train, y_train, "by_class", layout="class_folders")
    ... # doctest: +SKIP
    >>> X, y = read_class_folders(root)  # doctest: +SKIP
    >>> ImageFolderLoader(root, color_mode="rgb", target_size=(64, 64)).transform(X).shape
    ... # doctest: +SKIP
    (30, 64, 64, 3)
    """
    y = np.asarray(y)
    _check_photos(photos, "photos")
    if len(photos) != len(y):
        raise ValueError(f"photos and y differ in length: {len(photos)} photos, {len(y)} labels")
    names = y if class_names is None else _named(y, class_names)
    root = Path(directory)
    if layout == "class_folders":
        if test_photos is not None:
            raise ValueError("test_photos are written only with layout='competition': class "
                             "folders hold labelled photos. Write the test photos, with their "
                             "labels, to a class-folder layout of their own")
        folders = {name: _folder_name(name) for name in np.unique(names)}
        with replacing_folder(root, "photos") as stage:
            for folder in folders.values():
                (stage / folder).mkdir()
            for photo_id, (photo, name) in enumerate(zip(photos, names, strict=True), start=1):
                _save(photo, stage / folders[name] / f"{photo_id}{_SUFFIX}", quality)
        return root

    if test_photos is not None:
        _check_photos(test_photos, "test_photos")
    return write_layout(root, "photos", photos, names, test_photos, suffix=_SUFFIX,
                        save=lambda photo, path: _save(photo, path, quality))


@cache
def _backgrounds():
    """The sample photos of scikit-learn, decoded once per process."""
    return tuple(Image.fromarray(image) for image in load_sample_images().images)


def _balanced(labels, n_per_class, random_state):
    """Positions of ``n_per_class`` items of each label, drawn at random, in their order."""
    chosen = []
    for label in np.unique(labels).tolist():
        positions = np.flatnonzero(labels == label)
        if len(positions) < n_per_class:
            raise ValueError(f"n_per_class={n_per_class} but label {label!r} has only "
                             f"{len(positions)} images; lower n_per_class or pass more images")
        chosen.append(random_state.choice(positions, n_per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def _photo(item, backgrounds, size_range, object_scale, random_state):
    height, width = random_state.randint(size_range[0], size_range[1] + 1, size=2)
    source = backgrounds[random_state.randint(len(backgrounds))]
    photo = _background(source, int(height), int(width), random_state)
    side = max(1, round(random_state.uniform(*object_scale) * min(height, width)))
    grey = _item_grey(item, side, random_state)
    top = random_state.randint(height - grey.shape[0] + 1)
    left = random_state.randint(width - grey.shape[1] + 1)
    tint = _tint(random_state)
    grey = grey[..., np.newaxis]
    opacity = np.minimum(1.0, _OPACITY_GAIN * grey)
    colour = tint * (_SHADE_FLOOR + (1 - _SHADE_FLOOR) * grey)
    region = photo[top:top + grey.shape[0], left:left + grey.shape[1]]
    region[...] = np.rint(region * (1 - opacity) + colour * opacity)
    return photo


def _background(source, height, width, random_state):
    """A crop of ``source`` at a random place, size and tilt, resized to ``height × width``."""
    angle = random_state.uniform(-_MAX_ROTATION, _MAX_ROTATION)
    cos, sin = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    # The photo's outline once tilted, with a pixel more on each side so that the rotation's
    # black corners stay out of the centred crop.
    outline = (math.ceil(width * cos + height * sin) + 2,
               math.ceil(width * sin + height * cos) + 2)
    # Source pixels per photo pixel: a fraction of the most at which the outline fits.
    step = (min(source.width / outline[0], source.height / outline[1])
            * random_state.uniform(*_CROP_FRACTION))
    box_width, box_height = outline[0] * step, outline[1] * step
    left = random_state.uniform(0, source.width - box_width)
    top = random_state.uniform(0, source.height - box_height)
    # Resizing before the rotation keeps it cheap; Pillow's resize filters out aliasing.
    region = source.resize(outline, Image.Resampling.BILINEAR,
                           box=(left, top, left + box_width, top + box_height))
    region = region.rotate(angle, Image.Resampling.BILINEAR)
    margin_x, margin_y = (outline[0] - width) // 2, (outline[1] - height) // 2
    region = region.crop((margin_x, margin_y, margin_x + width, margin_y + height))
    if random_state.rand() < 0.5:
        region = region.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.array(region)


def _item_grey(item, side, random_state):
    """The item tilted, then scaled to ``side`` pixels on its longer side, as grey levels 0-1."""
    angle = random_state.uniform(-_MAX_ITEM_ROTATION, _MAX_ITEM_ROTATION)
    # Tilting first, at the item's own small size, is cheap and gives the pasted item an
    # outline of exactly ``side`` pixels, so it always fits in the photo.
    image = Image.fromarray(item).rotate(angle, Image.Resampling.BICUBIC, expand=True)
    longer = max(image.size)
    size = tuple(max(1, round(extent * side / longer)) for extent in image.size)
    image = image.resize(size, Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.float32) / 255


def _tint(random_state):
    """A colour of any hue, neither grey nor dark, as RGB 0-255."""
    hue, saturation, value = random_state.uniform((0, 0.35, 0.55), (1, 1, 1))
    return np.array(colorsys.hsv_to_rgb(hue, saturation, value), dtype=np.float32) * 255


def _named(y, class_names):
    """``y`` with each label replaced by its name in ``class_names``."""
    labels = np.unique(y).tolist()
    try:
        names = {label: class_names[label] for label in labels}
    except (IndexError, KeyError, TypeError):
        raise ValueError(f"class_names must name every label as class_names[label]; the labels "
                         f"are {labels}, class_names is {class_names!r}") from None
    return np.array([names[label] for label in y.tolist()])


def _check_photos(photos, name):
    for position, photo in enumerate(photos):
        photo = np.asarray(photo)
        if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[-1] != 3:
            raise ValueError(f"{name}[{position}] must be an RGB uint8 image of shape "
                             f"(height, width, 3); got {photo.dtype} of shape {photo.shape}")


def _folder_name(name):
    name = str(name)
    if not name or name.startswith(".") or any(sep in name for sep in "/\\"):
        raise ValueError(f"the class {name!r} cannot name a folder: class folders' names may "
                         "not be empty, start with '.' or hold '/' or '\\'. Pass class_names= "
                         "with names that can, e.g. [name.replace('/', '-') for name in "
                         "FASHION_MNIST_CLASSES]")
    return name


def _save(photo, path, quality):
    Image.fromarray(np.asarray(photo)).save(path, quality=quality)
