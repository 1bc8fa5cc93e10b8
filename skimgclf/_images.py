"""Image files to uint8 arrays: safe path resolution, PIL decoding, mode conversion, resizing."""

import os
import stat

import numpy as np
from PIL import ExifTags, Image, ImageOps

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
# EXIF orientations 5-8 swap width and height.
_SWAPPED_ORIENTATIONS = frozenset({5, 6, 7, 8})


def resolve_image_path(name, root, where):
    """Locate ``name`` inside the folder ``root`` without letting it escape.

    Parameters
    ----------
    name : str
        The image's name relative to ``root``; may contain sub-folders.
    root : str
        The image folder, already passed through :func:`os.path.realpath`.
    where : str
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
    try:
        status = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return path, None
    if len(parts) > 1 or stat.S_ISLNK(status.st_mode):
        # Only then can the name lead elsewhere: a plain entry of a real folder is its own
        # real path, and realpath() costs an lstat() per component of root.
        path = os.path.realpath(path)
        if os.path.commonpath([root, path]) != root:
            raise ImageLoadError(f"{where}: resolves to {path}, outside image_dir ({root}), "
                                 "through a symbolic link; refused")
        try:
            status = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return path, None
    if not stat.S_ISREG(status.st_mode):
        # Opening a pipe or a device could block forever or read without end.
        raise ImageLoadError(f"{where}: is not a regular file (a folder, pipe or device); "
                             "refused")
    return path, status


def decode_image(path, where, *, mode, size, resample):
    """Decode one image file into an array of 8-bit pixels.

    Parameters
    ----------
    path : str
        The file.
    where : str
        The name and row for error messages.
    mode : {"L", "RGB", "RGBA"}
        The PIL mode of the output.
    size : tuple of (int, int) or None
        ``(width, height)`` to resize to (PIL's order), or None to keep the file's size.
    resample : PIL.Image.Resampling
        The resampling filter used when resizing.

    Returns
    -------
    ndarray of shape (height, width, channels), uint8
        The pixels, EXIF orientation applied.

    Raises
    ------
    ImageLoadError
        If the file cannot be decoded, for whatever reason, or trips PIL's decompression-bomb
        guard.
    """
    try:
        # Streamed from the file, so that a huge non-image file is refused by its header
        # instead of being read whole.
        with Image.open(path) as image:
            return _decode(image, mode, size, resample)
    except Image.DecompressionBombError as err:
        raise ImageLoadError(
            f"{where}: refused by PIL's decompression-bomb guard ({err}). If the file is "
            "trusted, raise the limit before loading: PIL.Image.MAX_IMAGE_PIXELS = "
            "<pixels> (None turns the guard off)."
        ) from err
    except Exception as err:
        # Decoders of untrusted bytes fail in many ways (OSError, SyntaxError, struct.error,
        # ValueError, ...); all of them mean the same thing to the caller: this file is bad.
        raise ImageLoadError(f"{where}: cannot be decoded as an image "
                             f"({type(err).__name__}: {err})") from err


def _decode(image, mode, size, resample):
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    if size is not None and image.format == "JPEG":
        # Draft mode makes libjpeg decode at 1/2, 1/4 or 1/8 scale when the file is at least
        # that many times larger than the target: far less work, and the resize still follows.
        draft_size = size[::-1] if orientation in _SWAPPED_ORIENTATIONS else size
        image.draft(None, draft_size)
    if orientation != 1:
        image = ImageOps.exif_transpose(image)
    image = _convert(image, mode)
    if size is not None and image.size != size:
        image = image.resize(size, resample)
    width, height = image.size
    return np.frombuffer(image.tobytes(), np.uint8).reshape(height, width, CHANNELS[mode])


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
