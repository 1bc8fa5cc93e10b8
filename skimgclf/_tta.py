"""Test-time augmentation: fixed views of each image, whose predicted probabilities are averaged.

The views are fixed, so predictions stay deterministic: the image itself and its mirror
(``"flip"``), or four shifts of 5 % of its side, the uncovered border filled with the edge pixels
(``"shift"``, for images that a mirror would change the meaning of, such as digits and text), or
both (``"standard"``).
"""

import numpy as np

from ._batches import scaled

TTA_PRESETS = ("flip", "shift", "standard")
# Images per chunk: each view of a chunk is one array, so memory stays bounded for any X.
_CHUNK = 1024
_SHIFT = 0.05


def predict_views(model, X, tta, batch_size):
    """Mean over the views ``tta`` of ``model``'s predictions for each image of ``X``.

    ``X`` holds pixels in [0, 1], or 8-bit pixels scaled here a chunk at a time.
    """
    chunks = []
    for start in range(0, len(X), _CHUNK):
        batch = X[start:start + _CHUNK]
        if batch.dtype == np.uint8:
            batch = scaled(batch)
        total = sum(model.predict(view, batch_size=batch_size, verbose=0)
                    for view in _views(batch, tta))
        chunks.append(total / _n_views(tta))
    return np.concatenate(chunks)


def average_views(network, images, tta):
    """Keras layers averaging ``network``'s outputs over the views ``tta`` of ``images``.

    The same views as :func:`predict_views`, built from Keras operations so that they go
    into an exported graph; ``images`` is a symbolic batch of pixels in [0, 1].
    """
    from ._backend import keras

    ops = keras.ops
    views = [images]
    if tta in ("flip", "standard"):
        views.append(ops.flip(images, axis=2))
    if tta in ("shift", "standard"):
        for axis, shift in _shifts(*images.shape[1:3]):
            size = images.shape[axis]
            # Edge pixels fill the uncovered border, as np.pad(mode="edge") does.
            if shift > 0:
                edge = ops.repeat(_part(images, axis, 0, 1), shift, axis=axis)
                views.append(ops.concatenate([edge, _part(images, axis, 0, size - shift)],
                                             axis=axis))
            else:
                edge = ops.repeat(_part(images, axis, size - 1, size), -shift, axis=axis)
                views.append(ops.concatenate([_part(images, axis, -shift, size), edge],
                                             axis=axis))
    return keras.layers.Average()([network(view) for view in views])


def _part(images, axis, start, stop):
    return images[(slice(None),) * axis + (slice(start, stop),)]


def _n_views(tta):
    return {"flip": 2, "shift": 5, "standard": 6}[tta]


def _shifts(height, width):
    """``(axis, shift)`` of the four shifted views, on an ``(n, height, width, c)`` batch."""
    dy, dx = max(1, round(_SHIFT * height)), max(1, round(_SHIFT * width))
    return ((1, dy), (1, -dy), (2, dx), (2, -dx))


def _views(batch, tta):
    yield batch
    if tta in ("flip", "standard"):
        yield batch[:, :, ::-1]
    if tta in ("shift", "standard"):
        for axis, shift in _shifts(*batch.shape[1:3]):
            yield _shifted(batch, shift if axis == 1 else 0, shift if axis == 2 else 0)


def _shifted(batch, dy, dx):
    pad = ((0, 0), (abs(dy), abs(dy)), (abs(dx), abs(dx)), (0, 0))
    padded = np.pad(batch, pad, mode="edge")
    height, width = batch.shape[1:3]
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[:, top:top + height, left:left + width]
