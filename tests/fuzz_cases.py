"""Hostile and odd image files for fuzzing ImageFolderLoader, shared by the test and benchmark.

``tests/test_fuzz_loader.py`` draws a few hundred cases through hypothesis;
``benchmarks/fuzz_loader.py`` draws tens of thousands from a seed. Both ask
:func:`make_case` for a case of one kind from an integer seed, so a failure found by either
is replayed exactly by ``make_case(kind, seed)``, and :func:`run_case` judges the outcome: the
pixels the file holds, or an :class:`~skimgclf.exceptions.ImageLoadError` naming the file;
anything else (another exception, wrong pixels, a hang) is a :class:`FuzzFailure`.
"""

import io
import os
import random
import shutil
import signal
import struct
import tempfile
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

from skimgclf import ImageFolderLoader
from skimgclf.datasets import load_fashion_mnist_sample
from skimgclf.exceptions import ImageLoadError

#: Seconds one case may take before it counts as a hang.
TIMEOUT = 10
COLOR_MODES = ("grayscale", "rgb", "rgba")
SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"II*\0", b"MM\0*", b"BM",
               b"RIFF\0\0\0\0WEBP", b"")
# (PIL mode, format) pairs PIL writes and reads back in a mode the loader must convert.
_MODE_FORMATS = (
    ("1", "PNG"), ("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("I;16", "PNG"), ("RGB", "PNG"),
    ("RGBA", "PNG"), ("1", "TIFF"), ("LA", "TIFF"), ("PA", "TIFF"), ("I;16", "TIFF"),
    ("I", "TIFF"), ("F", "TIFF"), ("CMYK", "TIFF"), ("YCbCr", "TIFF"), ("RGBA", "TIFF"),
    ("P", "GIF"), ("L", "BMP"), ("P", "BMP"), ("RGB", "BMP"), ("LA", "TGA"), ("RGBA", "TGA"),
    ("I", "PPM"), ("F", "PPM"), ("RGB", "WEBP"), ("RGBA", "WEBP"),
    ("L", "JPEG"), ("RGB", "JPEG"), ("CMYK", "JPEG"), ("YCbCr", "JPEG"),
)
# Mean absolute error allowed by a lossy format, in grey levels.
_LOSSY = {"JPEG": 4.0}
# Pieces of odd names: a leading dash, spaces, shell and URL characters, scripts, combining
# marks, emoji, full-width and right-to-left text.
_NAME_PIECES = ("-", "--help", " ", "  ", "\t", "#", "%20", "$(x)", "'", '"', ";", "&", "*",
                "?", "[a]", "~", "é", "e\u0301", "猫", "🐱", "ｆｕｌｌ", "مرحبا", "\u200b",
                "Ω", "ß", "x", "img", "0", ".", ",", "=", "+", "\\")


@dataclass(frozen=True)
class Case:
    """One file in a folder, the row naming it, and what loading it must give.

    ``expected`` is the exact pixels when known, None when any pixels of the right kind are
    right (a mutated file can decode to something), or ``"error"`` when only an
    ImageLoadError is right. ``pixel_limit`` is the ``PIL.Image.MAX_IMAGE_PIXELS`` to load
    under, None to keep PIL's.
    """

    kind: str
    seed: int
    name: str
    content: bytes
    color_mode: str
    expected: object = None
    tolerance: float = 0.0
    pixel_limit: int | None = None


class FuzzFailure(AssertionError):
    """A case ended in neither correct pixels nor an ImageLoadError naming the file."""


class CaseTimeout(BaseException):
    """Raised into a case that ran past its time; a BaseException so nothing swallows it."""


@cache
def sample_images():
    """A few hundred real Fashion-MNIST images, uint8 (n, 28, 28)."""
    (x_train, _), _ = load_fashion_mnist_sample()
    return x_train[:300]


def make_case(kind, seed):
    """Return case ``seed`` of ``kind`` (a key of :data:`KINDS`); the same seed, the same case."""
    rng = random.Random(f"{kind}:{seed}")
    return KINDS[kind](rng, seed)


def run_case(case, root, timeout=TIMEOUT):
    """Load ``case`` from a fresh folder under ``root``; return ``"pixels"`` or ``"error"``.

    Raises
    ------
    FuzzFailure
        On any other outcome: another exception, an error not naming the file, PIL's
        DecompressionBombWarning reaching the caller, pixels of the wrong shape or values,
        pixels where only an error is right, or a hang.
    """
    folder = tempfile.mkdtemp(dir=root)
    limit = Image.MAX_IMAGE_PIXELS
    try:
        _write(folder, case)
        loader = ImageFolderLoader(folder, color_mode=case.color_mode, rescale=None,
                                   dtype="uint8")
        if case.pixel_limit is not None:
            Image.MAX_IMAGE_PIXELS = case.pixel_limit
        try:
            with time_limit(timeout), warnings.catch_warnings():
                # The warning would be printed to the user; as an error it ends in PIL's
                # decoder, whose errors the loader wraps, and is found below.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                pixels = loader.transform([case.name])
        except ImageLoadError as err:
            if isinstance(err.__cause__, Image.DecompressionBombWarning):
                raise FuzzFailure(f"{_describe(case)}: PIL's DecompressionBombWarning reached "
                                  f"the caller: {err}") from err
            if repr(case.name) not in str(err):
                raise FuzzFailure(f"{_describe(case)}: the error does not name the file: "
                                  f"{err}") from err
            return "error"
        except CaseTimeout:
            raise FuzzFailure(f"{_describe(case)}: still loading after {timeout} s") from None
        except Exception as err:
            raise FuzzFailure(f"{_describe(case)}: {type(err).__name__}: {err}") from err
        _check_pixels(case, pixels)
        return "pixels"
    finally:
        Image.MAX_IMAGE_PIXELS = limit
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def time_limit(seconds):
    """Raise :class:`CaseTimeout` in the main thread once ``seconds`` have passed."""
    def expire(signum, frame):
        raise CaseTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _describe(case):
    return f"case {case.kind!r} seed {case.seed} (name {case.name!r})"


def _write(folder, case):
    try:
        path = os.path.join(folder, case.name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as file:
            file.write(case.content)
    except (OSError, ValueError):
        # Names no file can have (NUL, too long, a lone surrogate): the case expects an error.
        if case.expected != "error":
            raise


def _check_pixels(case, pixels):
    channels = {"grayscale": 1, "rgb": 3, "rgba": 4}[case.color_mode]
    if isinstance(case.expected, str):
        raise FuzzFailure(f"{_describe(case)}: loaded pixels of shape {pixels.shape}; only an "
                          "ImageLoadError is right")
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[::3] != (1, channels):
        raise FuzzFailure(f"{_describe(case)}: pixels of dtype {pixels.dtype} and shape "
                          f"{pixels.shape}; expected (1, height, width, {channels}) uint8")
    if case.expected is None:
        return
    expected = case.expected
    if pixels.shape[1:] != expected.shape:
        raise FuzzFailure(f"{_describe(case)}: pixels of shape {pixels.shape[1:]}; expected "
                          f"{expected.shape}")
    error = np.abs(pixels[0].astype(float) - expected).mean()
    if error > case.tolerance:
        raise FuzzFailure(f"{_describe(case)}: pixels off by {error:.2f} grey levels on "
                          f"average (allowed {case.tolerance})")


# The kinds of case. Each takes a random.Random and the seed, and returns a Case.


def random_bytes(rng, seed):
    """Random bytes, often behind a format's signature so that its decoder reads them."""
    body = rng.randbytes(rng.choice((1, 16, 100, 1000, 5000)))
    return Case("random", seed, "a.png", rng.choice(SIGNATURES) + body, _color_mode(rng))


def zero_byte(rng, seed):
    """An empty file."""
    return Case("empty", seed, rng.choice(("a.png", "a.jpg", "a")), b"", _color_mode(rng),
                expected="error")


def truncated(rng, seed):
    """A real image file cut short at a random byte.

    Only the trailing bytes after the pixel data may go missing without an error, so pixels
    must be those of the whole file: a partly decoded image must never pass for a whole one.
    """
    content, image_format, exact = _encoded(rng)
    color_mode = _color_mode(rng)
    return Case("truncated", seed, "a.png", content[:rng.randrange(len(content))], color_mode,
                expected=_expected(exact, None, color_mode),
                tolerance=_LOSSY.get(image_format, 0.0))


def mutated(rng, seed):
    """A real image file with a few bytes flipped, replaced, inserted, deleted or repeated."""
    content = bytearray(_encoded(rng)[0])
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(content))
        edit = rng.randrange(5)
        if edit == 0:
            content[at] ^= 1 << rng.randrange(8)
        elif edit == 1:
            content[at] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif edit == 2:
            content[at:at] = rng.randbytes(rng.randint(1, 16))
        elif edit == 3:
            del content[at:at + rng.randint(1, 16)]
        else:
            content[at:at] = content[at:at + rng.randint(1, 64)]
        if not content:
            content = bytearray(b"\0")
    return Case("mutated", seed, "a.png", bytes(content), _color_mode(rng))


def bomb(rng, seed):
    """An image over the decompression-bomb limit, or a header declaring a huge one.

    Three bands: a header with (almost) no data declaring more than twice PIL's limit, which
    PIL refuses on opening; a real image that decodes whole, between a limit and twice it,
    where PIL only warns, which the loader must refuse before decoding it; a header declaring
    a large image under PIL's limit, whose missing data the decoder must find. The real images
    are drawn under a lower limit than PIL's (89.5 million pixels), which makes them small
    enough to write by the thousand.
    """
    image_format = rng.choice(sorted(BOMB_HEADERS))
    band = rng.randrange(3)
    if band == 1:
        limit = rng.choice((10_000, 100_000, 1_000_000))
        width = rng.randint(-(-(limit + 1) // 65535), min(65535, limit))
        height = rng.randint(limit // width + 1, min(65535, 2 * limit // width))
        return Case("bomb", seed, "a.png", real_bomb(image_format, width, height, rng),
                    _color_mode(rng), expected="error", pixel_limit=limit)
    limit = Image.MAX_IMAGE_PIXELS
    if band == 0:
        pixels = rng.randint(2 * limit + 1, 65535 * 65535)
    else:
        pixels = rng.randint(limit // 100, limit)
    width = rng.randint(max(1, -(-pixels // 65535)), min(65535, pixels))
    height = max(1, min(65535, pixels // width))
    content = BOMB_HEADERS[image_format](width, height, rng)
    return Case("bomb", seed, "a.png", content, _color_mode(rng), expected="error")


def odd_mode(rng, seed):
    """A real image stored in one of PIL's less common modes; the pixels are known exactly."""
    grey = _grey(rng)
    mode, image_format = rng.choice(_MODE_FORMATS)
    alpha = rng.choice((None, 255 - grey)) if mode in ("LA", "PA", "RGBA") else None
    image, exact = _in_mode(grey, mode, alpha)
    content = _save(image, image_format)
    color_mode = _color_mode(rng)
    return Case("mode", seed, f"a.{image_format.lower()}", content, color_mode,
                expected=_expected(exact, alpha, color_mode),
                tolerance=_LOSSY.get(image_format, 0.0))


def odd_name(rng, seed):
    """A valid PNG under a name of odd characters, or a name no file can have."""
    pieces = [rng.choice(_NAME_PIECES) for _ in range(rng.randint(1, 6))]
    name = "".join(pieces) + rng.choice((".png", ".PNG", "", " .png"))
    if rng.random() < 0.3:
        name = rng.choice(("sub dir", "-", "ü", "a b")) + "/" + name
    unsafe = rng.randrange(8)
    if unsafe == 0:
        name = "x" * rng.randint(256, 400) + name  # longer than any file system allows
    elif unsafe == 1:
        name = name + "\ud800"  # a lone surrogate: no file name can hold it
    elif unsafe == 2:
        name = name + "\0"
    elif unsafe == 3:
        name = "../" + name
    grey = _grey(rng)
    color_mode = _color_mode(rng)
    # "." and ".." name folders, not files.
    if unsafe > 3 and name.split("/")[-1] not in (".", ".."):
        expected = _expected(grey, None, color_mode)
    else:
        expected = "error"
    return Case("name", seed, name, _save(Image.fromarray(grey), "PNG"), color_mode,
                expected=expected)


KINDS = {
    "random": random_bytes,
    "empty": zero_byte,
    "truncated": truncated,
    "mutated": mutated,
    "bomb": bomb,
    "mode": odd_mode,
    "name": odd_name,
}


def _color_mode(rng):
    return rng.choice(COLOR_MODES)


def _grey(rng):
    """A real image, sometimes cropped to a thin strip or a single pixel, or enlarged."""
    images = sample_images()
    grey = images[rng.randrange(len(images))]
    if rng.random() < 0.3:
        top, left = rng.randrange(28), rng.randrange(28)
        grey = grey[top:top + rng.randint(1, 28), left:left + rng.randint(1, 28)]
    elif rng.random() < 0.2:
        grey = np.kron(grey, np.ones((rng.randint(2, 4), rng.randint(2, 4)), np.uint8))
    return np.ascontiguousarray(grey)


def _encoded(rng):
    """A real image encoded in a random (mode, format); returns (bytes, format, grey levels)."""
    mode, image_format = rng.choice(_MODE_FORMATS)
    image, exact = _in_mode(_grey(rng), mode, None)
    return _save(image, image_format), image_format, exact


def _in_mode(grey, mode, alpha):
    """``grey`` stored as a PIL image of ``mode``, and the grey levels a correct read gives."""
    exact = grey
    if mode == "1":
        exact = np.where(grey > 127, 255, 0).astype(np.uint8)
        image = Image.fromarray(grey > 127)
    elif mode in ("I;16", "I"):
        image = Image.fromarray(grey.astype(np.uint16 if mode == "I;16" else np.int32) * 257)
    elif mode == "F":
        image = Image.fromarray(grey.astype(np.float32))
    elif mode in ("P", "PA"):
        image = Image.fromarray(grey).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
        exact = np.asarray(image.convert("L"))
    elif mode == "CMYK":
        zeros = np.zeros_like(grey)
        image = Image.fromarray(np.stack([zeros, zeros, zeros, 255 - grey], -1), "CMYK")
    elif mode == "YCbCr":
        half = np.full_like(grey, 128)
        image = Image.fromarray(np.stack([grey, half, half], -1), "YCbCr")
    else:
        image = Image.fromarray(grey).convert(mode.replace("A", "") or "L")
    if alpha is not None:
        image = image.convert({"P": "PA", "L": "LA", "RGB": "RGBA"}.get(image.mode, image.mode))
        image.putalpha(Image.fromarray(alpha))
    return image, exact


def _expected(grey, alpha, color_mode):
    if color_mode == "grayscale":
        return grey[..., None]
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    if color_mode == "rgb":
        return rgb
    opaque = np.full_like(grey, 255) if alpha is None else alpha
    return np.concatenate([rgb, opaque[..., None]], axis=-1)


def _save(image, image_format):
    buffer = io.BytesIO()
    # exact: lossless WebP would otherwise drop the colour under fully transparent pixels.
    params = {"JPEG": {"quality": 95},
              "WEBP": {"lossless": True, "exact": True}}.get(image_format, {})
    image.save(buffer, image_format, **params)
    return buffer.getvalue()


# The modes a real bomb is written in, by format: BMP and TIFF are written uncompressed, so
# mostly in 1 bit a pixel.
_BOMB_MODES = {"PNG": ("1", "L", "P", "RGB", "RGBA"), "JPEG": ("L", "RGB"), "GIF": ("L",),
               "TIFF": ("1", "1", "L"), "BMP": ("1", "1", "L")}


def real_bomb(image_format, width, height, rng):
    """A real image file of ``width`` × ``height`` pixels that decodes whole.

    One grey with a sample image in its corner, so that the file is small where the format
    compresses.
    """
    image = Image.new("L", (width, height), rng.randrange(256))
    image.paste(Image.fromarray(_grey(rng)))
    mode = rng.choice(_BOMB_MODES[image_format])
    return _save(image.convert(mode, dither=Image.Dither.NONE), image_format)


def _png_bomb(width, height, rng):
    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data)))

    header = struct.pack(">IIBBBBB", width, height, 8, rng.choice((0, 2, 4, 6)), 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(rng.randint(1, 4096)))) + chunk(b"IEND", b""))


def _gif_bomb(width, height, rng):
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
            + b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
            + b"\x08\x02\x4c\x01\x00;")


def _bmp_bomb(width, height, rng):
    data = bytes(rng.randint(0, 256))
    return (b"BM" + struct.pack("<IHHI", 54 + len(data), 0, 0, 54)
            + struct.pack("<IiiHHIIiiII", 40, width, height, 1, rng.choice((8, 24, 32)), 0, 0,
                          2835, 2835, 0, 0) + data)


def _tiff_bomb(width, height, rng):
    data_offset = 8 + 2 + 8 * 12 + 4
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, data_offset), (278, 4, height), (279, 4, 16)]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3
                                             else struct.pack("<I", value))
        for tag, kind, value in entries) + struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", 8) + ifd + bytes(16)


def _jpeg_bomb(width, height, rng):
    frame = struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"
    return (b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(frame) + 2) + frame
            + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + bytes(rng.randint(0, 64))
            + b"\xff\xd9")


BOMB_HEADERS = {"PNG": _png_bomb, "GIF": _gif_bomb, "BMP": _bmp_bomb, "TIFF": _tiff_bomb,
                 "JPEG": _jpeg_bomb}
