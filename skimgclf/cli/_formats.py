"""Colour or grey, one size or many: what the training images are, read from their headers.

Where ``--color-mode`` or ``--target-size`` leave it open, the command line decides from the
files themselves, before any image is decoded or TensorFlow is started, and says so in one line.
The loader saved in the model folder keeps the choice, so ``predict`` repeats it.
"""

import os
from collections import Counter
from dataclasses import replace

from PIL import Image

from .._backbones import BACKBONES
from .._images import resolve_image_path
from ..exceptions import ImageLoadError

# PIL's modes without colour; a palette image is grey when its palette is.
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_SHOWN = 3


def settle_formats(names, images, spec, backbones, console):
    """``spec`` with its colour mode and size decided where the options left them open.

    ``names`` are the image names with their suffix, relative to ``images``; ``backbones`` the
    backbones the run may train (None for the tutorial network). Colour if any image is in
    colour; no resizing when every image has the same size; otherwise a backbone's native size,
    or the most common size.

    Raises
    ------
    ValueError
        If a backbone would get images smaller than it takes, naming the fix.
    """
    pretrained = [BACKBONES[name] for name in backbones if name in BACKBONES]
    decided, said = {}, []
    if spec.color_mode is None or spec.target_size is None:
        headers = _headers(names, images)
        sizes = Counter(size for size, _, _ in headers.values())
        if spec.color_mode is None:
            coloured = [name for name, (_, mode, palette) in headers.items()
                        if _in_colour(mode, palette)]
            decided["color_mode"] = "rgb" if coloured else "grayscale"
            said.append(f"in colour (e.g. {coloured[0]!r})" if coloured else "grey")
        if spec.target_size is None and len(sizes) == 1:
            said.append(f"all {_size(next(iter(sizes)))}")
        elif spec.target_size is None:
            shown = ", ".join(f"{_size(size)}: {count:,}"
                              for size, count in sizes.most_common(_SHOWN))
            more = f" and {len(sizes) - _SHOWN} more sizes" if len(sizes) > _SHOWN else ""
            if pretrained:
                side = max(backbone.native_size for backbone in pretrained)
                decided["target_size"], why = (side, side), "the backbone's native size"
            else:
                (width, height), _ = sizes.most_common(1)[0]
                decided["target_size"], why = (height, width), "the most common size"
            target = decided["target_size"]
            said.append(f"of {len(sizes)} sizes ({shown}{more}); resizing them to "
                        f"{target[0]}×{target[1]}, {why}")
        console.step(f"images: {', '.join(said)} (--color-mode and --target-size choose "
                     "otherwise)")
    spec = replace(spec, **decided)
    smallest = min(spec.target_size) if spec.target_size else min(map(min, sizes))
    for backbone in pretrained:
        if smallest < backbone.min_size:
            raise ValueError(
                f"the images are {smallest} pixels on their shortest side, but the backbone "
                f"takes at least {backbone.min_size}×{backbone.min_size}: set --target-size, "
                f"e.g. --target-size {backbone.native_size} {backbone.native_size} (its "
                "ImageNet weights were trained at that size)")
    return spec


def _headers(names, images):
    """``{name: ((width, height), mode, palette)}``, read without decoding the pixels."""
    root = os.path.realpath(images)
    headers = {}
    for name in dict.fromkeys(names):
        try:
            # The loader's own resolution: names leaving the folder, pipes and devices are
            # never opened.
            path, status = resolve_image_path(name, root, name)
            if status is None:
                continue
            with Image.open(path) as image:
                palette = image.getpalette() if image.mode in ("P", "PA") else None
                headers[name] = (image.size, image.mode, palette)
        except (ImageLoadError, OSError, ValueError, Image.DecompressionBombError):
            # The loader refuses it, naming the file and its row; it has no say here.
            continue
    if not headers:
        raise ValueError(f"none of the images named in the CSV can be read from {images}; "
                         f"check --images")
    return headers


def _in_colour(mode, palette):
    if mode in ("P", "PA"):
        return palette is not None and any(
            palette[index] != palette[index + 1] or palette[index] != palette[index + 2]
            for index in range(0, len(palette), 3))
    return mode not in _GREY_MODES


def _size(size):
    width, height = size
    return f"{height}×{width}"


def image_paths(names, suffix):
    """The file names of ``names`` with ``suffix``, as the loader makes them."""
    lowered = suffix.lower()
    return [name if name.lower().endswith(lowered) else name + suffix
            for name in map(os.fspath, names)]
