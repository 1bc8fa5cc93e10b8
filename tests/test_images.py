"""Decoding every PIL mode, EXIF orientation, draft mode, bad files and safe path resolution."""

import io
import os
import warnings

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin, PngImagePlugin
from sklearn.datasets import load_sample_image

from skimgclf import _images
from skimgclf._images import RowName, decode_block, decode_image, pil_limits, resolve_image_path
from skimgclf.exceptions import ImageLoadError

WHERE = "'img' (row 7)"


@pytest.fixture(scope="module")
def pixels(fashion_sample):
    """One real 28×28 Fashion-MNIST image, uint8."""
    (x_train, _), _ = fashion_sample
    return x_train[3]


def decode(path, mode="L", size=None, resample=Image.Resampling.BILINEAR, jpeg_draft=True):
    return decode_image(os.fspath(path), WHERE, mode=mode, size=size, resample=resample,
                        jpeg_draft=jpeg_draft, max_pixels=Image.MAX_IMAGE_PIXELS)


def grey_palette_image(pixels):
    image = Image.frombytes("P", pixels.shape[::-1], pixels.tobytes())
    image.putpalette([level for value in range(256) for level in (value, value, value)])
    return image


def test_grey_png_is_exact(tmp_path, pixels):
    Image.fromarray(pixels).save(tmp_path / "a.png")
    out = decode(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (28, 28, 1)
    np.testing.assert_array_equal(out[..., 0], pixels)


@pytest.mark.parametrize("mode, channels", [("RGB", 3), ("RGBA", 4)])
def test_grey_png_is_replicated_into_colour_channels(tmp_path, pixels, mode, channels):
    Image.fromarray(pixels).save(tmp_path / "a.png")
    out = decode(tmp_path / "a.png", mode=mode)
    assert out.shape == (28, 28, channels)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], pixels)
    if channels == 4:
        assert (out[..., 3] == 255).all()


@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_palette_image_uses_its_palette(tmp_path, pixels, suffix):
    grey_palette_image(pixels).save(tmp_path / f"a{suffix}")
    np.testing.assert_array_equal(decode(tmp_path / f"a{suffix}")[..., 0], pixels)
    np.testing.assert_array_equal(decode(tmp_path / f"a{suffix}", "RGB")[..., 1], pixels)


def test_palette_transparency_becomes_alpha(tmp_path, pixels):
    image = grey_palette_image(pixels)
    image.info["transparency"] = 0
    image.save(tmp_path / "a.png", transparency=0)
    out = decode(tmp_path / "a.png", "RGBA")
    np.testing.assert_array_equal(out[..., 3], np.where(pixels == 0, 0, 255))
    np.testing.assert_array_equal(out[..., 0], pixels)


def test_grey_with_alpha(tmp_path, pixels):
    alpha = 255 - pixels
    Image.merge("LA", [Image.fromarray(pixels), Image.fromarray(alpha)]).save(tmp_path / "a.png")
    np.testing.assert_array_equal(decode(tmp_path / "a.png")[..., 0], pixels)
    rgba = decode(tmp_path / "a.png", "RGBA")
    np.testing.assert_array_equal(rgba[..., 2], pixels)
    np.testing.assert_array_equal(rgba[..., 3], alpha)


def test_rgb_and_rgba_are_exact_and_grey_uses_pil_luma(tmp_path, pixels):
    bands = [pixels, pixels // 2, 255 - pixels, pixels // 3 + 10]
    rgba = np.stack(bands, axis=-1)
    Image.fromarray(rgba[..., :3]).save(tmp_path / "rgb.png")
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(decode(tmp_path / "rgb.png", "RGB"), rgba[..., :3])
    np.testing.assert_array_equal(decode(tmp_path / "rgba.png", "RGBA"), rgba)
    luma = np.asarray(Image.fromarray(rgba[..., :3]).convert("L"))
    np.testing.assert_array_equal(decode(tmp_path / "rgb.png")[..., 0], luma)
    # Alpha is dropped, not composited, when fewer channels are asked for.
    np.testing.assert_array_equal(decode(tmp_path / "rgba.png", "RGB"), rgba[..., :3])


def test_cmyk(tmp_path, pixels):
    cmyk = np.stack([pixels, 255 - pixels, pixels // 2, np.full_like(pixels, 20)], axis=-1)
    image = Image.frombytes("CMYK", (28, 28), cmyk.tobytes())
    image.save(tmp_path / "a.tif")
    np.testing.assert_array_equal(decode(tmp_path / "a.tif", "RGB"),
                                  np.asarray(image.convert("RGB")))
    assert decode(tmp_path / "a.tif").shape == (28, 28, 1)


def test_16_bit_png_is_scaled_not_clipped(tmp_path, pixels):
    Image.fromarray(pixels.astype(np.uint16) * 257).save(tmp_path / "a.png")
    assert Image.open(tmp_path / "a.png").mode == "I;16"
    np.testing.assert_array_equal(decode(tmp_path / "a.png")[..., 0], pixels)
    np.testing.assert_array_equal(decode(tmp_path / "a.png", "RGB")[..., 0], pixels)


def test_32_bit_int_is_read_on_the_16_bit_scale(tmp_path, pixels):
    wide = pixels.astype(np.int32) * 257
    wide[0, 0] = -5  # out of range values are clipped, not wrapped
    Image.fromarray(wide).save(tmp_path / "a.tif")
    assert Image.open(tmp_path / "a.tif").mode == "I"
    expected = pixels.copy()
    expected[0, 0] = 0
    np.testing.assert_array_equal(decode(tmp_path / "a.tif")[..., 0], expected)


def test_float_image_is_read_on_the_8_bit_scale(tmp_path, pixels):
    Image.fromarray(pixels.astype(np.float32)).save(tmp_path / "a.tif")
    assert Image.open(tmp_path / "a.tif").mode == "F"
    np.testing.assert_array_equal(decode(tmp_path / "a.tif")[..., 0], pixels)


def test_bilevel_image(tmp_path, pixels):
    Image.fromarray(pixels > 127).save(tmp_path / "a.png")
    assert Image.open(tmp_path / "a.png").mode == "1"
    np.testing.assert_array_equal(decode(tmp_path / "a.png")[..., 0],
                                  np.where(pixels > 127, 255, 0))


@pytest.mark.parametrize("orientation, upright", [
    (1, lambda a: a),
    (2, np.fliplr),
    (3, lambda a: np.rot90(a, 2)),
    (4, np.flipud),
    (5, np.transpose),
    (6, lambda a: np.rot90(a, -1)),
    (7, lambda a: np.rot90(a, 2).T),
    (8, lambda a: np.rot90(a, 1)),
])
def test_exif_orientation_is_applied(tmp_path, pixels, orientation, upright):
    stored = pixels[:, :20]  # not square, so a rotation shows in the shape
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "a.png", exif=exif)
    np.testing.assert_array_equal(decode(tmp_path / "a.png")[..., 0], upright(stored))


def test_xmp_orientation_is_applied(tmp_path, pixels):
    stored = pixels[:, :20]
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta><rdf:Description tiff:Orientation="6"/>'
                                       '</x:xmpmeta>')
    Image.fromarray(stored).save(tmp_path / "a.png", pnginfo=info)
    np.testing.assert_array_equal(decode(tmp_path / "a.png")[..., 0], np.rot90(stored, -1))


@pytest.mark.parametrize("name, image_format, params", [
    ("a.tga", "TGA", {}),  # no signature: found by probing PIL's formats
    ("a.webp", "WEBP", {"lossless": True}),
    ("a.bmp", "BMP", {}),
    ("a.png", "GIF", {}),  # the contents decide, not the name
])
def test_formats_are_recognised_by_their_contents(tmp_path, pixels, name, image_format,
                                                  params):
    Image.fromarray(pixels).save(tmp_path / name, image_format, **params)
    np.testing.assert_array_equal(decode(tmp_path / name)[..., 0], pixels)


@pytest.mark.parametrize("content", [b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n",
                                     b"\xc5\xd0\xd3\xc6" + bytes(28)])
def test_postscript_is_refused(tmp_path, content):
    (tmp_path / "a.png").write_bytes(content)
    with pytest.raises(ImageLoadError, match=r"row 7\): is PostScript .*Ghostscript.*refused"):
        decode(tmp_path / "a.png")


def test_large_files_are_streamed_not_read_whole(tmp_path, pixels, monkeypatch):
    Image.fromarray(pixels).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not an image" * 100)
    monkeypatch.setattr(_images, "_READ_WHOLE_MAX", 10)
    reads = []
    original = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: reads.append(n) or original(fd, n))
    np.testing.assert_array_equal(decode(tmp_path / "a.png")[..., 0], pixels)
    with pytest.raises(ImageLoadError, match="row 7.*UnidentifiedImageError"):
        decode(tmp_path / "b.png")
    assert reads == []  # read by PIL through a buffered file, in small blocks


def test_decode_block_takes_the_first_shape_and_reports_others(tmp_path, pixels):
    Image.fromarray(pixels).save(tmp_path / "a.png")
    Image.fromarray(pixels[:20]).save(tmp_path / "b.png")
    paths = [str(tmp_path / name) for name in ("a.png", "b.png", "a.png")]
    block, mismatched = decode_block(paths, [WHERE] * 3, shape=None, mode="L", size=None,
                                     resample=Image.Resampling.BILINEAR, jpeg_draft=True,
                                     pil_limits=pil_limits())
    assert block.shape == (3, 28, 28, 1) and mismatched == [(1, (20, 28, 1))]
    np.testing.assert_array_equal(block[[0, 2], ..., 0], [pixels, pixels])


def test_decode_block_decodes_under_the_given_pil_limits(tmp_path, pixels, monkeypatch):
    Image.fromarray(pixels).save(tmp_path / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    with pytest.raises(ImageLoadError, match="decompression-bomb"):
        decode_block([str(tmp_path / "a.png")], [WHERE], shape=(28, 28, 1), mode="L",
                     size=None, resample=Image.Resampling.BILINEAR, jpeg_draft=True,
                     pil_limits=(100, False))


def test_row_name_is_built_when_shown():
    assert str(RowName("3.png", 2, 102)) == "'3.png' (row 2, index 102)"
    assert f"{RowName('3.png', 2, 2)}: bad" == "'3.png' (row 2): bad"


def test_resize_uses_the_interpolation(tmp_path, pixels):
    Image.fromarray(pixels).save(tmp_path / "a.png")
    for resample in (Image.Resampling.NEAREST, Image.Resampling.BICUBIC):
        out = decode(tmp_path / "a.png", size=(14, 21), resample=resample)
        assert out.shape == (21, 14, 1)
        expected = np.asarray(Image.fromarray(pixels).resize((14, 21), resample))
        np.testing.assert_array_equal(out[..., 0], expected)


@pytest.fixture(scope="module")
def photo_jpeg(tmp_path_factory):
    """scikit-learn's bundled 640×427 photo, as a JPEG file with EXIF orientation 6."""
    path = tmp_path_factory.mktemp("photo") / "china.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(load_sample_image("china.jpg")).save(path, quality=90, exif=exif)
    return path


def test_jpeg_is_drafted_when_shrinking(photo_jpeg, monkeypatch):
    calls = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        calls.append(size)
        result = original(self, mode, size)
        calls.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    # Displayed upright (orientation 6) the photo is 427 wide and 640 high, so the draft size
    # is asked in the file's own orientation: 640×427 at 1/8 is 80×54, still ≥ 64×32.
    out = decode(photo_jpeg, "RGB", size=(32, 64))
    assert out.shape == (64, 32, 3)
    assert calls == [(64, 32), (80, 54)]
    with Image.open(photo_jpeg) as image:
        upright = image.convert("RGB").transpose(Image.Transpose.ROTATE_270)
    full = np.asarray(upright.resize((32, 64), Image.Resampling.BILINEAR), dtype=float)
    # A few grey levels from the full-size decode; a wrong orientation is off by tens.
    assert np.abs(out - full).mean() < 5
    assert np.abs(out - full[::-1, ::-1]).mean() > 20


def test_mpo_is_drafted_like_jpeg(tmp_path, monkeypatch):
    # A JPEG with a second picture appended, as phones write Ultra HDR photos: PIL opens it as
    # MPO, whose first picture is drafted like any JPEG.
    china = Image.fromarray(load_sample_image("china.jpg"))
    china.save(tmp_path / "a.jpg", "MPO", save_all=True, append_images=[china.reduce(4)])
    calls = []
    original = JpegImagePlugin.JpegImageFile.draft
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft",
                        lambda self, mode, size: calls.append(size) or original(self, mode, size))
    assert decode(tmp_path / "a.jpg", "RGB", size=(32, 32)).shape == (32, 32, 3)
    assert calls == [(32, 32)]


def test_jpeg_is_not_drafted_without_resize(photo_jpeg):
    assert decode(photo_jpeg, "RGB").shape == (640, 427, 3)


def test_jpeg_draft_off_decodes_at_full_size(photo_jpeg, monkeypatch):
    # Bit for bit the full-size decode, turned upright, then resized.
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", None)  # any call would fail
    out = decode(photo_jpeg, "RGB", size=(32, 64), jpeg_draft=False)
    monkeypatch.undo()
    with Image.open(photo_jpeg) as image:
        upright = image.convert("RGB").transpose(Image.Transpose.ROTATE_270)
    expected = np.asarray(upright.resize((32, 64), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(out, expected)
    assert not np.array_equal(decode(photo_jpeg, "RGB", size=(32, 64)), expected)


@pytest.mark.parametrize("content, reason", [
    (b"", "UnidentifiedImageError"),
    (b"id,label\n1,2\n", "UnidentifiedImageError"),
    ("truncated", "OSError"),
])
def test_bad_files_raise_image_load_error(tmp_path, pixels, content, reason):
    if content == "truncated":
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG")
        content = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(ImageLoadError, match=rf"'img' \(row 7\).*{reason}"):
        decode(tmp_path / "bad.png")


def test_folder_is_not_an_image(tmp_path):
    (tmp_path / "a.png").mkdir()
    with pytest.raises(ImageLoadError, match=r"row 7.*IsADirectoryError"):
        decode(tmp_path / "a.png")


def test_decompression_bomb_guard_stays_on(tmp_path, pixels, monkeypatch):
    Image.fromarray(pixels).save(tmp_path / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 784 pixels > 2 × 100
    with pytest.raises(ImageLoadError, match=r"row 7.*decompression-bomb.*MAX_IMAGE_PIXELS"):
        decode(tmp_path / "a.png")


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "GIF", "TIFF", "BMP"])
def test_images_over_the_limit_are_refused_before_decoding(tmp_path, pixels, monkeypatch,
                                                           allocations, image_format):
    # Between PIL's limit and twice it PIL only warns, then decodes the whole image.
    image = Image.new("L", (1500, 1000), 40)
    image.paste(Image.fromarray(pixels))
    image.save(tmp_path / "a.img", image_format)
    paths = [str(tmp_path / "a.img")]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageLoadError, match=(
                r"^'img' \(row 7\): refused by the decompression-bomb guard \(1500×1000 = "
                r"1,500,000 pixels, over PIL\.Image\.MAX_IMAGE_PIXELS = 1,000,000\)\. .*trusted.*"
                r"PIL\.Image\.MAX_IMAGE_PIXELS = 1500000 \(None turns the guard off\)")):
            decode_block(paths, [WHERE], shape=None, mode="L", size=None,
                         resample=Image.Resampling.BILINEAR, jpeg_draft=True,
                         pil_limits=pil_limits())
    assert [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)] == []
    assert allocations == []
    # The file is real: under a limit it fits (exactly), it decodes whole.
    block, _ = decode_block(paths, [WHERE], shape=None, mode="L", size=None,
                            resample=Image.Resampling.BILINEAR, jpeg_draft=True,
                            pil_limits=(1_500_000, False))
    assert block.shape == (1, 1000, 1500, 1) and allocations == [(1500, 1000)]
    assert np.abs(block[0, :28, :28, 0] - pixels.astype(float)).mean() < 8  # JPEG is lossy


class TestResolveImagePath:
    def test_plain_and_nested_names(self, tmp_path):
        root = os.path.realpath(tmp_path)
        (tmp_path / "a.png").write_bytes(b"x")
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "b.png").write_bytes(b"xy")
        path, status = resolve_image_path("a.png", root, WHERE)
        assert path == os.path.join(root, "a.png") and status.st_size == 1
        path, status = resolve_image_path("sub/b.png", root, WHERE)
        assert path == os.path.join(root, "sub", "b.png") and status.st_size == 2

    def test_missing_file_has_no_status(self, tmp_path):
        root = os.path.realpath(tmp_path)
        assert resolve_image_path("nope.png", root, WHERE)[1] is None
        (tmp_path / "file").write_bytes(b"x")
        assert resolve_image_path("file/nope.png", root, WHERE)[1] is None

    @pytest.mark.parametrize("name, message", [
        ("/etc/passwd", "absolute"),
        ("../secret.png", r"'\.\.'"),
        ("sub/../../secret.png", r"'\.\.'"),
        ("a\0.png", "NUL"),
    ])
    def test_unsafe_names_are_refused(self, tmp_path, name, message):
        with pytest.raises(ImageLoadError, match=rf"row 7.*{message}"):
            resolve_image_path(name, os.path.realpath(tmp_path), WHERE)

    def test_symlinks_must_stay_inside(self, tmp_path):
        inside, outside = tmp_path / "images", tmp_path / "elsewhere"
        inside.mkdir()
        outside.mkdir()
        (outside / "secret.png").write_bytes(b"x")
        (inside / "real.png").write_bytes(b"xyz")
        (inside / "leak.png").symlink_to(outside / "secret.png")
        (inside / "leakdir").symlink_to(outside)
        (inside / "alias.png").symlink_to(inside / "real.png")
        root = os.path.realpath(inside)
        for name in ("leak.png", "leakdir/secret.png"):
            with pytest.raises(ImageLoadError, match="row 7.*outside image_dir"):
                resolve_image_path(name, root, WHERE)
        path, status = resolve_image_path("alias.png", root, WHERE)
        assert path == os.path.join(root, "real.png") and status.st_size == 3

    def test_only_regular_files(self, tmp_path):
        root = os.path.realpath(tmp_path)
        (tmp_path / "folder.png").mkdir()
        os.mkfifo(tmp_path / "pipe.png")
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "pipe.png").symlink_to(tmp_path / "pipe.png")
        for name in ("folder.png", "pipe.png", "sub/pipe.png"):
            with pytest.raises(ImageLoadError, match="row 7.*not a regular file"):
                resolve_image_path(name, root, WHERE)

    @pytest.mark.parametrize("name", ["loop.png", "sub/loop.png", "x" * 300 + ".png",
                                      "\ud800.png"])
    def test_unreachable_names_are_image_load_errors(self, tmp_path, name):
        # Found by fuzzing: a symbolic-link loop, a name longer than the file system allows and
        # a lone surrogate escaped as a bare OSError or UnicodeEncodeError without the row.
        (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
        (tmp_path / "sub").symlink_to(tmp_path / "sub")
        with pytest.raises(ImageLoadError, match=r"row 7\): (cannot be reached|the name is not)"):
            resolve_image_path(name, os.path.realpath(tmp_path), WHERE)
