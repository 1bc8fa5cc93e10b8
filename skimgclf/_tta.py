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


def _n_views(tta):
    return {"flip": 2, "shift": 5, "standard": 6}[tta]


def _views(batch, tta):
    yield batch
    if tta in ("flip", "standard"):
        yield batch[:, :, ::-1]
    if tta in ("shift", "standard"):
        height, width = batch.shape[1:3]
        dy, dx = max(1, round(_SHIFT * height)), max(1, round(_SHIFT * width))
        for shift in ((dy, 0), (-dy, 0), (0, dx), (0, -dx)):
            yield _shifted(batch, *shift)


def _shifted(batch, dy, dx):
    pad = ((0, 0), (abs(dy), abs(dy)), (abs(dx), abs(dx)), (0, 0))
    padded = np.pad(batch, pad, mode="edge")
    height, width = batch.shape[1:3]
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[:, top:top + height, left:left + width]
