"""Image files to uint8 arrays: safe path resolution, PIL decoding, mode conversion, resizing."""

import io
import os
import stat
import threading
import warnings
from contextlib import contextmanager

import numpy as np
from PIL import ExifTags, Image, ImageFile

from .exceptions import ImageLoadError

#: ``color_mode`` → the PIL mode decoded into; the number of channels follows from it.
COLOR_MODES = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}
CHANNELS = {"L": 1, "RGB": 3, "RGBA": 4}

INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}

# Modes PIL converts to L, RGB and RGBA correctly by itself.
_DIRECT_MODES = frozenset({"1", "L", "LA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"})
# Integer modes wider than 8 bits: PIL's own conversion to L clips them at 255.
_WIDE_INT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
# EXIF orientation → the transposition that makes the image upright; 5-8 swap width and height.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPPED_ORIENTATIONS = frozenset({5, 6, 7, 8})
# Where PIL finds an orientation besides a TIFF's own tags (see Image.getexif): an image
# without any of these is upright, and parsing its (absent) EXIF would cost more than decoding
# a small PNG.
_ORIENTATION_SOURCES = frozenset({"exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp"})
# The leading bytes of common formats and the PIL format reading them, so that Image.open
# asks one plugin instead of probing them all.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\0", "TIFF"),
    (b"MM\0*", "TIFF"),
    (b"II+\0", "TIFF"),
    (b"MM\0+", "TIFF"),
    (b"BM", "BMP"),
)
# The formats PIL can decode at a reduced scale. MPO is a JPEG with more pictures appended,
# which PIL opens as a format of its own: Android's Ultra HDR photos (a gain map) and stereo
# cameras' photos; its first picture, the one loaded, is a JPEG like any other.
_DRAFT_FORMATS = frozenset({"JPEG", "MPO"})
# PIL reads PostScript by running Ghostscript on it: a program interpreting untrusted files.
_REFUSED_FORMATS = frozenset({"EPS"})
_POSTSCRIPT_SIGNATURES = (b"%!PS", b"\xc5\xd0\xd3\xc6")
# Files up to this size are read whole in one system call, which costs less than PIL's
# buffered reads; larger ones are streamed, so that a huge non-image file is refused by its
# header instead of being read into memory.
_READ_WHOLE_MAX = 64 * 2**20
# The end of the message refusing an image over the decompression-bomb limit.
_RAISE_THE_LIMIT = ("If the file is trusted, raise the limit before loading: "
                    "PIL.Image.MAX_IMAGE_PIXELS = {pixels} (None turns the guard off).")


class RowName:
    """A row of ``X`` as error messages name it: ``'3.png' (row 2, index 102)``.

    The text is only built when a message needs it; most rows never fail.

    Parameters
    ----------
    name : str
        The image's name.
    position : int
        The row's position in ``X``.
    label : object
        The row's pandas index label, or ``position`` when ``X`` has none.
    """

    __slots__ = ("name", "position", "label")

    def __init__(self, name, position, label):
        self.name = name
        self.position = position
        self.label = label

    def __str__(self):
        label = "" if self.label == self.position else f", index {self.label!r}"
        return f"{self.name!r} (row {self.position}{label})"

    def __reduce__(self):
        # Twice as fast to pickle as the default for __slots__, for the rows sent to workers.
        return RowName, (self.name, self.position, self.label)


def resolve_image_path(name, root, where):
    """Locate ``name`` inside the folder ``root`` without letting it escape.

    Parameters
    ----------
    name : str
        The image's name relative to ``root``; may contain sub-folders.
    root : str
        The image folder, already passed through :func:`os.path.realpath`.
    where : str or RowName
        The name and row for error messages.

    Returns
    -------
    path : str
        The resolved path, inside ``root``.
    status : os.stat_result or None
        The file's status, or None when it does not exist.

    Raises
    ------
    ImageLoadError
        If the name is absolute, contains ``..`` or a NUL byte, resolves (through a symbolic
        link) outside ``root``, or is not a regular file.
    """
    if "\0" in name:
        raise ImageLoadError(f"{where}: the name contains a NUL byte; refused")
    if os.path.isabs(name):
        raise ImageLoadError(f"{where}: absolute names are refused; names must be relative "
                             f"to image_dir ({root})")
    parts = name.replace(os.altsep or os.sep, os.sep).split(os.sep)
    if ".." in parts:
        raise ImageLoadError(f"{where}: names containing '..' are refused; names must stay "
                             f"inside image_dir ({root})")
    path = os.path.join(root, name)
    status = _status(os.lstat, path, where)
    if status is None:
        return path, None
    if len(parts) > 1 or stat.S_ISLNK(status.st_mode):
        # Only then can the name lead elsewhere: a plain entry of a real folder is its own
        # real path, and realpath() costs an lstat() per component of root.
        path = os.path.realpath(path)
        if os.path.commonpath([root, path]) != root:
            raise ImageLoadError(f"{where}: resolves to {path}, outside image_dir ({root}), "
                                 "through a symbolic link; refused")
        status = _status(os.stat, path, where)
        if status is None:
            return path, None
    if not stat.S_ISREG(status.st_mode):
        # Opening a pipe or a device could block forever or read without end.
        raise ImageLoadError(f"{where}: is not a regular file (a folder, pipe or device); "
                             "refused")
    return path, status


def _status(stat_function, path, where):
    """Return ``stat_function(path)``, None when nothing is there, or raise ImageLoadError."""
    try:
        return stat_function(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except UnicodeEncodeError as err:
        # A lone surrogate, which no file name can hold.
        raise ImageLoadError(f"{where}: the name is not valid text for a file name ({err}); "
                             "refused") from err
    except OSError as err:
        # A symbolic-link loop, a name too long for the file system, a folder without
        # permission: the file cannot be read, whatever the image.
        raise ImageLoadError(f"{where}: cannot be reached ({type(err).__name__}: "
                             f"{err.strerror})") from err


def decode_block(paths, wheres, *, shape, mode, size, resample, jpeg_draft, pil_limits,
                 cache=None, versions=None):
    """Decode files of one shape into one block of 8-bit pixels.

    The unit of work of a parallel load: a worker process returns the compact block, not one
    array per image. PIL's limits are passed along because a fresh worker process does not
    share the caller's.

    Parameters
    ----------
    paths : list of str
        The files, as returned by :func:`resolve_image_path`.
    wheres : list of RowName
        Their rows, for error messages.
    shape : tuple of (int, int, int) or None
        ``(height, width, channels)`` of the block's images; None takes the first image's.
    mode, size, resample, jpeg_draft
        As for :func:`decode_image`.
    pil_limits : tuple of (int or None, bool)
        ``PIL.Image.MAX_IMAGE_PIXELS`` and ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` to decode
        with.
    cache : DecodedImageCache or None, default=None
        Where to keep each decoded image.
    versions : list of tuple or None, default=None
        The files' ``(st_size, st_mtime_ns)``; needed with ``cache``.

    Returns
    -------
    block : ndarray of shape (len(paths), *shape), uint8
        The pixels; the rows of images of another shape are left unset.
    mismatched : list of tuple
        ``(index in paths, shape)`` of each image of another shape.
    """
    Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = pil_limits
    block = None if shape is None else np.empty((len(paths), *shape), np.uint8)
    mismatched = []
    # A worker process runs this on its main thread: its warnings would reach the terminal.
    with silence_bomb_warnings():
        for index, path in enumerate(paths):
            pixels = decode_image(path, wheres[index], mode=mode, size=size, resample=resample,
                                  jpeg_draft=jpeg_draft, max_pixels=pil_limits[0])
            if cache is not None:
                cache.put(cache.entry(path, versions[index]), pixels)
            if block is None:
                shape = pixels.shape
                block = np.empty((len(paths), *shape), np.uint8)
            if pixels.shape == shape:
                block[index] = pixels
            else:
                mismatched.append((index, pixels.shape))
    return block, mismatched


def pil_limits():
    """Return PIL's settings that decide which files decode: see :func:`decode_block`."""
    return Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES


@contextmanager
def silence_bomb_warnings():
    """Keep PIL's DecompressionBombWarning from being shown, on the main thread only.

    The warning concerns images over ``PIL.Image.MAX_IMAGE_PIXELS``, which
    :func:`decode_image` refuses anyway; shown, it would only precede the error. Python's
    warning filters are global to the process, and ``warnings.catch_warnings`` restores them
    from a copy: two threads inside it at once can leave them changed for good. The loader
    decodes on the calling thread, on joblib's threads while the calling thread waits, or on
    the main thread of worker processes; so only the main thread changes the filters, and no
    other thread of the loader does meanwhile. Called from any other thread, this does
    nothing: the warning may be shown there, and the image is refused all the same.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def decode_image(path, where, *, mode, size, resample, jpeg_draft, max_pixels):
    """Decode one image file into an array of 8-bit pixels.

    Parameters
    ----------
    path : str
        The file.
    where : str or RowName
        The name and row for error messages.
    mode : {"L", "RGB", "RGBA"}
        The PIL mode of the output.
    size : tuple of (int, int) or None
        ``(width, height)`` to resize to (PIL's order), or None to keep the file's size.
    resample : PIL.Image.Resampling
        The resampling filter used when resizing.
    jpeg_draft : bool
        Whether a JPEG file at least twice ``size`` is decoded at 1/2, 1/4 or 1/8 scale
        before the resize (PIL's draft mode); False decodes it at full size.
    max_pixels : int or None
        The most pixels an image may have, ``PIL.Image.MAX_IMAGE_PIXELS`` of the caller; None
        for no limit.

    Returns
    -------
    ndarray of shape (height, width, channels), uint8
        The pixels, EXIF orientation applied.

    Raises
    ------
    ImageLoadError
        If the file cannot be decoded, for whatever reason, or declares more than
        ``max_pixels`` pixels (found from its header, before any pixel is decoded).
    """
    try:
        with _open_file(path) as file, Image.open(file, formats=_formats(file)) as image:
            _check_pixels(image, max_pixels)
            return _decode(image, mode, size, resample, jpeg_draft)
    except _TooManyPixelsError as err:
        width, height = err.size
        raise ImageLoadError(
            f"{where}: refused by the decompression-bomb guard ({width}×{height} = "
            f"{err.pixels:,} pixels, over PIL.Image.MAX_IMAGE_PIXELS = {max_pixels:,}). "
            f"{_RAISE_THE_LIMIT.format(pixels=err.pixels)}"
        ) from None
    except Image.DecompressionBombError as err:
        raise ImageLoadError(
            f"{where}: refused by PIL's decompression-bomb guard ({str(err).rstrip('.')}; "
            f"PIL refuses images of over twice PIL.Image.MAX_IMAGE_PIXELS = "
            f"{Image.MAX_IMAGE_PIXELS:,}). {_RAISE_THE_LIMIT.format(pixels='<pixels>')}"
        ) from err
    except _PostScriptError as err:
        raise ImageLoadError(f"{where}: is PostScript (EPS), which PIL reads by running "
                             "Ghostscript on it; refused. Convert it to PNG first.") from err
    except Image.UnidentifiedImageError as err:
        # PIL's own message names an in-memory buffer, not the file.
        raise ImageLoadError(f"{where}: cannot be decoded as an image (UnidentifiedImageError: "
                             "its contents match no image format PIL reads)") from err
    except Exception as err:
        # Decoders of untrusted bytes fail in many ways (OSError, SyntaxError, struct.error,
        # ValueError, ...); all of them mean the same thing to the caller: this file is bad.
        raise ImageLoadError(f"{where}: cannot be decoded as an image "
                             f"({type(err).__name__}: {err})") from err


class _PostScriptError(Exception):
    """The file is PostScript, which is refused."""


class _TooManyPixelsError(Exception):
    """The image has more pixels than the limit: ``size`` and their number, ``pixels``."""

    def __init__(self, size, pixels):
        super().__init__(size, pixels)
        self.size = size
        self.pixels = pixels


def _check_pixels(image, max_pixels):
    """Raise _TooManyPixelsError if the opened ``image`` has more than ``max_pixels`` pixels.

    PIL refuses images of over twice its limit on opening, but between the limit and twice
    it only warns, then decodes them whole.
    """
    # Counted as PIL counts them, so that every image PIL warns about is refused.
    pixels = max(1, image.width) * max(1, image.height)
    if max_pixels is not None and pixels > max_pixels:
        raise _TooManyPixelsError(image.size, pixels)


def _open_file(path):
    """Return the file at ``path`` as a binary file object: in memory unless it is large."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size > _READ_WHOLE_MAX:
            file, fd = os.fdopen(fd, "rb"), None
            return file
        return io.BytesIO(os.read(fd, size))
    finally:
        if fd is not None:
            os.close(fd)


def _formats(file):
    """Return the PIL formats to try on ``file``, from its leading bytes."""
    head = file.read(16)
    file.seek(0)
    for signature, image_format in _SIGNATURES:
        if head.startswith(signature):
            return (image_format,)
    if head.startswith(_POSTSCRIPT_SIGNATURES):
        raise _PostScriptError
    return _fallback_formats()


def _fallback_formats():
    """Every format PIL can open, in its own order, except the refused ones."""
    Image.init()
    return tuple(name for name in Image.ID if name not in _REFUSED_FORMATS)


def _decode(image, mode, size, resample, jpeg_draft):
    if jpeg_draft and size is not None and image.format in _DRAFT_FORMATS:
        # Draft mode makes libjpeg decode at 1/2, 1/4 or 1/8 scale when the file is at least
        # that many times larger than the target: far less work, and the resize still follows.
        # The draft size is asked in the file's own orientation.
        swapped = _orientation(image) in _SWAPPED_ORIENTATIONS
        image.draft(None, size[::-1] if swapped else size)
    image.load()
    # After load(): a PNG may carry its EXIF after the pixel data.
    orientation = _orientation(image)
    if orientation in _UPRIGHT:
        image = image.transpose(_UPRIGHT[orientation])
    image = _convert(image, mode)
    if size is not None and image.size != size:
        image = image.resize(size, resample)
    width, height = image.size
    return np.frombuffer(image.tobytes(), np.uint8).reshape(height, width, CHANNELS[mode])


def _orientation(image):
    """Return the EXIF orientation of ``image``, 1 (upright) when it has none."""
    if _ORIENTATION_SOURCES.isdisjoint(image.info) and not hasattr(image, "tag_v2"):
        return 1
    return image.getexif().get(ExifTags.Base.Orientation, 1)


def _convert(image, mode):
    if image.mode in _WIDE_INT_MODES or image.mode == "F":
        image = Image.fromarray(_to_8bit(np.asarray(image), image.mode))
    elif image.mode in ("P", "PA"):
        # Through RGBA when the palette has transparency, as PIL asks, so none is lost.
        has_alpha = image.mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    elif image.mode not in _DIRECT_MODES:
        image = image.convert("RGB")
    return image if image.mode == mode else image.convert(mode)


def _to_8bit(pixels, mode):
    """Scale wide-range grey pixels to 0-255 instead of clipping them as PIL does.

    16-bit values (and 32-bit ``I``, which older Pillow used for 16-bit PNGs) map 65535 to 255;
    floating-point ``F`` images are taken on the 0-255 scale, as PIL's own conversion does.
    """
    if mode == "F":
        grey = np.rint(np.nan_to_num(pixels))
        return np.clip(grey, 0, 255).astype(np.uint8)
    wide = np.clip(pixels, 0, 65535).astype(np.uint32)
    return ((wide + 128) // 257).astype(np.uint8)
