"""On-disk cache of decoded images, shared by every loader, process and run that points at it."""

import hashlib
import os
import struct
import uuid

import numpy as np
import PIL

# An image entry is this header (magic, height, width, channels) followed by the uint8 pixels.
_HEADER = struct.Struct("<4sIII")
_MAGIC = b"SKI1"
_SUFFIX = ".pixels"
# A block entry: (magic, images, height, width, channels), then the pixels, padded so that
# they start on a page boundary and can be mapped into memory.
_BLOCK_HEADER = struct.Struct("<4sQIII")
_BLOCK_MAGIC = b"SKB1"
_BLOCK_OFFSET = 4096
_BLOCK_SUFFIX = ".block"


class DecodedImageCache:
    """Decoded 8-bit pixels of image files in ``directory``: per image, and per list of images.

    An image entry holds one file's pixels; its key covers the image's resolved path, its size
    and modification time in nanoseconds, the decode settings and the Pillow version, so a
    changed file, other settings or another decoder never return stale pixels. A block entry
    holds the pixels of a whole list of files, in order, keyed by all of theirs: a repeated
    transform (each candidate of a grid search loads the same folds) is one read, and the
    block can be mapped into memory rather than read. Pixels are stored before ``rescale`` and
    ``dtype`` are applied, so loaders differing only in those share entries.

    Entries are written to a temporary file and renamed into place, so an interrupted run or
    two processes writing the same entry never leave a partial one; an entry whose length
    does not match its header (a crash before the data reached the disk) is treated as absent.

    Parameters
    ----------
    directory : str or path-like
        Folder of the entries; created when missing.
    settings : tuple
        The decode settings the pixels depend on (colour mode, size, resampling filter, JPEG
        draft decoding).
    """

    def __init__(self, directory, settings):
        self.directory = os.fspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self._salt = repr((_MAGIC, PIL.__version__, settings))

    def entry(self, path, version):
        """Return the entry's file for the image at ``path``.

        ``version`` is the file's ``(st_size, st_mtime_ns)``.
        """
        key = f"{self._salt}\0{path}\0{version[0]}\0{version[1]}"
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
        return f"{self.directory}{os.sep}{digest}{_SUFFIX}"

    def block_entry(self, paths, versions):
        """Return the block entry's file for the images at ``paths``, in this order.

        ``versions`` holds each file's ``(st_size, st_mtime_ns)``.
        """
        digest = hashlib.sha256(f"{self._salt}\0block".encode())
        for path, (size, mtime) in zip(paths, versions, strict=True):
            digest.update(f"\0{path}\0{size}\0{mtime}".encode("utf-8", "surrogateescape"))
        return f"{self.directory}{os.sep}{digest.hexdigest()}{_BLOCK_SUFFIX}"

    def get_block(self, entry):
        """Map the pixels of block ``entry`` into memory, or return None when it is absent.

        Returns
        -------
        numpy.memmap of shape (n_images, height, width, channels), uint8, or None
            Copy-on-write: changing it changes memory, never the entry.
        """
        try:
            with open(entry, "rb") as file:
                header = file.read(_BLOCK_HEADER.size)
                size = os.fstat(file.fileno()).st_size
                if len(header) < _BLOCK_HEADER.size:
                    return None
                magic, *shape = _BLOCK_HEADER.unpack(header)
                if magic != _BLOCK_MAGIC or size != _BLOCK_OFFSET + int(np.prod(shape)):
                    return None
                return np.memmap(file, np.uint8, "c", offset=_BLOCK_OFFSET, shape=tuple(shape))
        except FileNotFoundError:
            return None

    def new_block(self, entry, shape):
        """Start writing block ``entry`` of ``shape``; see :class:`BlockWriter`."""
        return BlockWriter(entry, shape)

    def get(self, entry):
        """Return the pixels stored in ``entry``, or None when it is absent or incomplete."""
        # os-level calls: a warm cache is read at the speed of these few system calls, and
        # Python's buffered file objects would double their cost.
        try:
            fd = os.open(entry, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            data = os.read(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)
        if len(data) < _HEADER.size:
            return None
        magic, height, width, channels = _HEADER.unpack_from(data)
        if magic != _MAGIC or len(data) != _HEADER.size + height * width * channels:
            return None
        return np.frombuffer(data, np.uint8, offset=_HEADER.size).reshape(height, width, channels)

    def put(self, entry, pixels):
        """Store ``pixels`` (uint8, height × width × channels) in ``entry`` atomically."""
        write_entry(entry, _HEADER.pack(_MAGIC, *pixels.shape)
                    + np.ascontiguousarray(pixels).tobytes())


def write_entry(entry, data):
    """Write the bytes ``data`` to the cache file ``entry``: it appears whole or not at all.

    The temporary name is unique to this write, so concurrent writers of the same entry
    (threads, processes, machines sharing the folder) never share a file, and the rename makes
    the entry appear whole.
    """
    temporary = f"{entry}.{uuid.uuid4().hex}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        data = memoryview(data)
        try:
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)
        os.replace(temporary, entry)
    except BaseException:
        os.unlink(temporary)
        raise


class BlockWriter:
    """A block entry being written: a writable memory map of a temporary file.

    Fill :attr:`pixels`, then :meth:`commit` renames the file into place, or :meth:`discard`
    removes it. Rows are written straight to the file, so a block larger than memory can be
    built.

    Parameters
    ----------
    entry : str
        The block entry's file, from :meth:`DecodedImageCache.block_entry`.
    shape : tuple of int
        ``(n_images, height, width, channels)``.
    """

    def __init__(self, entry, shape):
        self.entry = entry
        self.temporary = f"{entry}.{uuid.uuid4().hex}.tmp"
        with open(self.temporary, "wb") as file:
            file.write(_BLOCK_HEADER.pack(_BLOCK_MAGIC, *shape))
            file.truncate(_BLOCK_OFFSET + int(np.prod(shape)))
        self.pixels = np.memmap(self.temporary, np.uint8, "r+", offset=_BLOCK_OFFSET,
                                shape=tuple(shape))

    def commit(self):
        """Write the pixels out and put the entry in place; return its file."""
        self.pixels.flush()
        del self.pixels
        os.replace(self.temporary, self.entry)
        return self.entry

    def discard(self):
        """Drop the unfinished entry."""
        del self.pixels
        os.unlink(self.temporary)
