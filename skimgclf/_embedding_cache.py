"""On-disk cache of image embeddings, shared by every embedder, process and run that points at it.

It follows the decoded-image cache (``_cache.py``): one file per entry, named by a hash of what
the entry depends on, written to a temporary name and renamed into place.
"""

import hashlib
import os
import struct

import numpy as np

from ._cache import write_entry

# An entry is this header (magic, width) followed by the embedding.
_HEADER = struct.Struct("<4sI")
_MAGIC = b"SKE1"
_SUFFIX = ".embedding"
# Little-endian whatever the machine, so that machines sharing the folder read the same numbers.
_DTYPE = np.dtype("<f4")


class EmbeddingCache:
    """Embeddings of images in ``directory``, one entry per image, keyed by its pixels.

    An entry's key covers the image's pixels (their bytes, shape and dtype) and ``network``,
    everything else the embedding depends on, so another network, other weights or another
    image never return a stale embedding, and the same image embeds once however many file
    lists, folds or runs hold it.

    Entries are written to a temporary file and renamed into place, so an interrupted run or
    two processes writing the same entry never leave a partial one; an entry whose length does
    not match its header (a crash before the data reached the disk) is treated as absent.

    Parameters
    ----------
    directory : str or path-like
        Folder of the entries; created when missing.
    network : tuple
        What the embeddings depend on besides the pixels: the backbone, its weights, the
        versions of the libraries computing them.
    """

    def __init__(self, directory, network):
        self.directory = os.fspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self._salt = repr((_MAGIC, network)).encode()

    def entry(self, image):
        """Return the entry's file for ``image``, an array of pixels."""
        digest = hashlib.sha256(self._salt)
        digest.update(repr((image.shape, image.dtype.str)).encode())
        digest.update(np.ascontiguousarray(image))
        return f"{self.directory}{os.sep}{digest.hexdigest()}{_SUFFIX}"

    def get(self, entry, width):
        """Return the embedding stored in ``entry``, or None when it is absent or incomplete.

        Returns
        -------
        ndarray of shape (width,), float32, or None
            Read-only: a view of the bytes read.
        """
        size = _HEADER.size + width * _DTYPE.itemsize
        try:
            fd = os.open(entry, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            # One byte more than an entry holds, to tell a longer file from a whole entry.
            data = os.read(fd, size + 1)
        finally:
            os.close(fd)
        if len(data) != size or _HEADER.unpack_from(data) != (_MAGIC, width):
            return None
        return np.frombuffer(data, _DTYPE, offset=_HEADER.size)

    def put(self, entry, embedding):
        """Store ``embedding`` (a 1-D float array) in ``entry`` atomically."""
        write_entry(entry, _HEADER.pack(_MAGIC, len(embedding))
                    + np.asarray(embedding, _DTYPE).tobytes())
