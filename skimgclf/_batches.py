"""Batches of 8-bit images for Keras, scaled to [0, 1] one batch at a time.

A uint8 array, often a memory map of the loader's cache, is read a batch at a time, so
training and prediction never hold a float copy of all the images.
"""

import math

import numpy as np

from ._backend import keras

# The loader's default rescale, computed the same way (in double precision, stored as float32),
# so 8-bit input trains exactly like the float input the loader makes.
_SCALE = 1 / 255


def scaled(pixels):
    """8-bit ``pixels`` as float32 in [0, 1], exactly as the loader scales them."""
    return (pixels * _SCALE).astype(np.float32)


class PixelBatches(keras.utils.PyDataset):
    """Rows of ``X`` (and ``y``, ``sample_weight``) in batches, pixels scaled to float32.

    Parameters
    ----------
    X : ndarray of shape (n_samples, height, width, channels), uint8
        The images; a ``numpy.memmap`` is read only where a batch needs it.
    y, sample_weight : ndarray of shape (n_samples,) or None
        Targets and weights, for training and validation batches.
    batch_size : int
        Rows per batch; the last batch holds the rest.
    rows : ndarray of int or None, default=None
        The rows to serve, in this order; None serves all of them.
    shuffle : numpy.random.Generator or None, default=None
        Shuffles the rows before the first epoch and after each one; None keeps the order.
    """

    def __init__(self, X, y=None, sample_weight=None, *, batch_size, rows=None, shuffle=None):
        super().__init__()
        self.X, self.y, self.sample_weight = X, y, sample_weight
        self.batch_size = batch_size
        self.rows = np.arange(len(X)) if rows is None else np.asarray(rows)
        self.shuffle = shuffle
        self.on_epoch_end()

    def __len__(self):
        return math.ceil(len(self.rows) / self.batch_size)

    def __getitem__(self, index):
        # Sorted, the rows of a batch are read from a memory map in file order.
        rows = np.sort(self.rows[index * self.batch_size:(index + 1) * self.batch_size])
        x = scaled(self.X[rows])
        if self.y is None:
            return (x,)
        if self.sample_weight is None:
            return x, self.y[rows]
        return x, self.y[rows], self.sample_weight[rows]

    def on_epoch_end(self):
        """Draw the next epoch's order."""
        if self.shuffle is not None:
            self.rows = self.shuffle.permutation(self.rows)
