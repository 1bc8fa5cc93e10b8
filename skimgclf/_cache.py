"""On-disk cache of decoded images, shared by every loader, process and run that points at it."""

import hashlib
import os
import struct
import threading

import numpy as np
import PIL

# An entry is this header (magic, height, width, channels) followed by the uint8 pixels.
_HEADER = struct.Struct("<4sIII")
_MAGIC = b"SKI1"
_SUFFIX = ".pixels"


class DecodedImageCache:
    """Decoded 8-bit pixels of image files, one file per image in ``directory``.

    An entry's key covers the image's resolved path, its size and modification time in
    nanoseconds, the decode settings and the Pillow version, so a changed file, other settings
    or another decoder never return stale pixels. Pixels are stored before ``rescale`` and
    ``dtype`` are applied, so loaders differing only in those share entries.

    Entries are written to a temporary file and renamed into place, so an interrupted run or
    two processes writing the same entry never leave a partial one; an entry whose length
    does not match its header (a crash before the data reached the disk) is treated as absent.

    Parameters
    ----------
    directory : str or path-like
        Folder of the entries; created when missing.
    settings : tuple
        The decode settings the pixels depend on (colour mode, size, resampling filter).
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
        # The temporary name is unique to this process and thread, so concurrent writers of
        # the same entry never share a file, and the rename makes the entry appear whole.
        temporary = f"{entry}.{os.getpid()}-{threading.get_ident()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            data = memoryview(_HEADER.pack(_MAGIC, *pixels.shape)
                              + np.ascontiguousarray(pixels).tobytes())
            try:
                while data:
                    data = data[os.write(fd, data):]
            finally:
                os.close(fd)
            os.replace(temporary, entry)
        except BaseException:
            os.unlink(temporary)
            raise
