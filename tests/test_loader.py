"""ImageFolderLoader and read_class_folders on real Fashion-MNIST files."""

import json
import logging
import os
import pickle
import struct
import subprocess
import sys
import warnings
import zlib
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.sparse import csr_matrix
from sklearn.base import clone
from sklearn.datasets import load_sample_image
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import check_param_validation, parametrize_with_checks

from skimgclf import ImageFolderLoader, read_class_folders
from skimgclf import loader as loader_module
from skimgclf.datasets import FASHION_MNIST_CLASSES
from skimgclf.exceptions import ImageLoadError


def scaled(images, rescale=1 / 255, dtype="float32"):
    """What the loader promises: the 8-bit pixels × rescale in double precision, as dtype."""
    return (images[..., None] * rescale).astype(dtype)


@pytest.fixture
def layout(small_layout):
    return small_layout[0]


@pytest.fixture
def train(small_layout):
    layout, x_train, y_train, _, _ = small_layout
    return pd.read_csv(layout.train_csv), x_train, y_train


@pytest.fixture
def folder(tmp_path, fashion_sample):
    """A folder of 12 real images, 0.png … 11.png, that tests may damage."""
    return _numbered_pngs(tmp_path, fashion_sample[0][0][:12])


def _numbered_pngs(folder, images):
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i}.png")
    return folder, images


def load_records(caplog):
    return [r for r in caplog.records if r.name == "skimgclf.loader"]


# --- the output ------------------------------------------------------------------------------


def test_competition_layout_loads_exact_pixels_in_order(layout, train):
    frame, x_train, _ = train
    loader = ImageFolderLoader(layout.train_dir, suffix=".png")
    out = loader.fit_transform(frame)
    assert out.shape == (300, 28, 28, 1) and out.dtype == np.float32
    np.testing.assert_array_equal(out, scaled(x_train))

    order = np.random.default_rng(0).permutation(len(frame))
    np.testing.assert_array_equal(loader.transform(frame.iloc[order]), scaled(x_train[order]))


def test_test_half_and_path_column(small_layout):
    layout, _, _, x_test, _ = small_layout
    frame = pd.read_csv(layout.test_csv).assign(other=0)[["other", "id"]]
    out = ImageFolderLoader(layout.test_dir, path_column="id", suffix=".png").transform(frame)
    np.testing.assert_array_equal(out, scaled(x_test))


@pytest.mark.parametrize("kind", ["series", "str", "path", "int array", "2-D array", "suffixed"])
def test_every_kind_of_x(layout, train, kind):
    frame, x_train, _ = train
    ids = frame["id"][:20]
    X = {
        "series": ids,
        "str": [str(i) for i in ids],
        "path": [Path(f"{i}.png") for i in ids],
        "int array": ids.to_numpy(),
        "2-D array": frame[:20].to_numpy(),
        "suffixed": [f"{i}.png" for i in ids],  # the suffix is not appended twice
    }[kind]
    out = ImageFolderLoader(layout.train_dir, suffix=".png").transform(X)
    np.testing.assert_array_equal(out, scaled(x_train[:20]))


def test_raw_uint8_and_other_rescales(layout, train):
    frame, x_train, _ = train
    raw = ImageFolderLoader(layout.train_dir, suffix=".png", rescale=None, dtype="uint8")
    out = raw.transform(frame)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], x_train)
    half = ImageFolderLoader(layout.train_dir, suffix=".png", rescale=0.5, dtype="float64")
    np.testing.assert_array_equal(half.transform(frame), scaled(x_train, 0.5, "float64"))


@pytest.mark.parametrize("color_mode, channels", [("rgb", 3), ("rgba", 4)])
def test_colour_modes_from_grey_files(layout, train, color_mode, channels):
    frame, x_train, _ = train
    out = ImageFolderLoader(layout.train_dir, suffix=".png", color_mode=color_mode,
                            rescale=None, dtype="uint8").transform(frame[:10])
    assert out.shape == (10, 28, 28, channels)
    np.testing.assert_array_equal(out[..., 1], x_train[:10])


def test_target_size_resizes_every_image(layout, train):
    frame, x_train, _ = train
    out = ImageFolderLoader(layout.train_dir, suffix=".png", target_size=(14, 20),
                            interpolation="nearest", rescale=None, dtype="uint8"
                            ).transform(frame[:5])
    assert out.shape == (5, 14, 20, 1)
    expected = np.asarray(Image.fromarray(x_train[4]).resize((20, 14), Image.Resampling.NEAREST))
    np.testing.assert_array_equal(out[4, ..., 0], expected)


# 28×28 PNGs are small files, decoded by processes, unless the threshold says otherwise.
@pytest.mark.parametrize("threads_min_file_bytes, prefer", [(None, "processes"),
                                                             (0, "threads")])
def test_parallel_workers_give_the_same_array(layout, train, monkeypatch,
                                              threads_min_file_bytes, prefer):
    frame, x_train, _ = train
    if threads_min_file_bytes is not None:
        monkeypatch.setattr(loader_module, "_THREADS_MIN_FILE_BYTES", threads_min_file_bytes)
    calls = []
    original = loader_module.Parallel
    monkeypatch.setattr(loader_module, "Parallel",
                        lambda **kwargs: calls.append(kwargs["prefer"]) or original(**kwargs))
    out = ImageFolderLoader(layout.train_dir, suffix=".png", n_jobs=2).transform(frame)
    assert calls == [prefer]
    np.testing.assert_array_equal(out, scaled(x_train))
    # Each file twice in a row: the files decoded are every other row, so the workers'
    # blocks land on scattered rows.
    order = np.repeat(np.random.default_rng(0).permutation(len(frame)), 2)
    out = ImageFolderLoader(layout.train_dir, suffix=".png", n_jobs=2, rescale=None,
                            dtype="uint8").transform(frame.iloc[order])
    np.testing.assert_array_equal(out[..., 0], x_train[order])


def test_repeated_rows_decode_each_file_once(folder, caplog):
    root, images = folder
    caplog.set_level(logging.INFO, logger="skimgclf.loader")
    rows = [3, 0, 3, 3, 11, 0]
    out = ImageFolderLoader(root, suffix=".png").transform(rows)
    np.testing.assert_array_equal(out, scaled(images[rows]))
    record = load_records(caplog)[-1]
    assert (record.n_images, record.n_decoded, record.n_from_cache) == (6, 3, 0)


def test_files_not_named_in_x_are_never_read(folder):
    root, images = folder
    # Files the rows do not name may be anything: a corrupt file, another size, a folder.
    (root / "corrupt.png").write_bytes(b"not an image")
    Image.fromarray(images[0][:20]).save(root / "small.png")
    (root / "sub.png").mkdir()
    out = ImageFolderLoader(root, suffix=".png").transform([1, 2])
    np.testing.assert_array_equal(out, scaled(images[[1, 2]]))


def test_progress_bar_only_for_large_inputs(layout, train, capsys):
    frame, _, _ = train
    loader = ImageFolderLoader(layout.train_dir, suffix=".png", verbose=True)
    loader.transform(frame)
    assert "Loading images" not in capsys.readouterr().err
    out = loader.transform(pd.concat([frame] * 4))  # 1,200 rows, the same files repeated
    assert out.shape[0] == 1200
    assert "1200/1200" in capsys.readouterr().err


# --- bad input: one clear error, nothing else happens ---------------------------------------


def test_different_sizes_are_listed_with_the_fix(folder):
    root, images = folder
    Image.fromarray(images[5][:20]).save(root / "5.png")
    Image.fromarray(images[7][:20]).save(root / "7.png")
    Image.fromarray(images[9][:, :10]).save(root / "9.png")
    with pytest.raises(ImageLoadError) as info:
        ImageFolderLoader(root, suffix=".png").transform(range(12))
    message = str(info.value)
    for expected in ("28×28 (9 images", "20×28 (2 images, e.g. '5.png' (row 5))",
                     "28×10 (1 images, e.g. '9.png' (row 9))", "target_size=(height, width)"):
        assert expected in message
    out = ImageFolderLoader(root, suffix=".png", target_size=(28, 28)).transform(range(12))
    assert out.shape == (12, 28, 28, 1)


def test_missing_files_give_one_error_before_any_decoding(folder, monkeypatch):
    root, _ = folder
    decoded = []
    monkeypatch.setattr(Image, "open", lambda *args, **kwargs: decoded.append(args))
    names = list(range(12)) + [20, 21, 22, 23, 24, 25, 26]
    with pytest.raises(ImageLoadError) as info:
        ImageFolderLoader(root, suffix=".png").transform(names)
    message = str(info.value)
    assert message.startswith(f"7 of 19 images are missing from {os.path.realpath(root)}: "
                              "'20.png', '21.png', '22.png', '23.png', '24.png' and 2 more")
    assert decoded == []


def test_missing_files_hint_at_the_suffix(folder):
    root, _ = folder
    with pytest.raises(ImageLoadError, match="12 of 12 .*set suffix, e.g. suffix='.png'"):
        ImageFolderLoader(root).transform(range(12))


def test_missing_image_dir(tmp_path):
    with pytest.raises(ImageLoadError, match="image_dir .*nope.* is not a folder"):
        ImageFolderLoader(tmp_path / "nope").transform(["a.png"])


@pytest.mark.parametrize("damage", ["zero-byte", "truncated", "text", "folder"])
def test_bad_file_names_file_and_row(folder, damage):
    root, _ = folder
    target = root / "6.png"
    if damage == "zero-byte":
        target.write_bytes(b"")
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "text":
        target.write_text("id,label\n1,0\n")
    else:
        target.unlink()
        target.mkdir()
    frame = pd.DataFrame({"id": range(12)}, index=range(100, 112))
    reason = "is not a regular file" if damage == "folder" else "cannot be decoded"
    with pytest.raises(ImageLoadError, match=rf"'6\.png' \(row 6, index 106\): {reason}"):
        ImageFolderLoader(root, suffix=".png").transform(frame)
    with pytest.raises(ImageLoadError, match=r"'6\.png' \(row 6\)"):
        ImageFolderLoader(root, suffix=".png", n_jobs=2).transform(list(range(12)))


@pytest.fixture
def big_folder(tmp_path, fashion_sample):
    """150 real images, 0.png … 149.png: enough for two worker processes."""
    return _numbered_pngs(tmp_path, fashion_sample[0][0][:150])


def test_bad_file_in_a_worker_process_names_file_and_row(big_folder):
    root, images = big_folder
    (root / "140.png").write_bytes(b"")
    (root / "7.png").unlink()
    Image.fromarray(images[7][:20]).save(root / "7.png")
    with pytest.raises(ImageLoadError, match=r"'140\.png' \(row 140\): cannot be decoded"):
        ImageFolderLoader(root, suffix=".png", n_jobs=2).transform(range(150))
    with pytest.raises(ImageLoadError, match=r"20×28 \(1 images, e\.g\. '7\.png' \(row 7\)\)"):
        ImageFolderLoader(root, suffix=".png", n_jobs=2).transform(range(140))


@contextmanager
def no_bomb_warnings():
    """Fail if PIL's DecompressionBombWarning reaches the caller, from any of its threads."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)] == []


# The 28×28 images hold 784 pixels: over twice 100, which PIL refuses itself; between 500 and
# twice it, where PIL only warns and the loader refuses them.
BOMB_LIMITS = [(100, r"PIL's decompression-bomb guard \(Image size \(784 pixels\)"),
               (500, r"the decompression-bomb guard \(28×28 = 784 pixels, over "
                     r"PIL\.Image\.MAX_IMAGE_PIXELS = 500\)")]


# Small files go to worker processes, and to threads when the threshold says so.
@pytest.mark.parametrize("threads_min_file_bytes", [None, 0])
@pytest.mark.parametrize("limit, refusal", [
    (790, r"PIL's decompression-bomb guard \(Image size \(1600 pixels\)"),
    (1000, r"the decompression-bomb guard \(40×40 = 1,600 pixels, over "
           r"PIL\.Image\.MAX_IMAGE_PIXELS = 1,000\)"),
])
def test_workers_keep_pil_limits(big_folder, monkeypatch, limit, refusal,
                                 threads_min_file_bytes):
    root, images = big_folder
    # One image of 1,600 pixels among images of 784, which fit under both limits.
    Image.fromarray(np.pad(images[140], 6)).save(root / "140.png")
    if threads_min_file_bytes is not None:
        monkeypatch.setattr(loader_module, "_THREADS_MIN_FILE_BYTES", threads_min_file_bytes)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    # With target_size no image is decoded in this process first: all go to the workers.
    # Warnings shown by worker processes do not reach this one: see
    # test_worker_processes_show_no_bomb_warning.
    with no_bomb_warnings(), pytest.raises(ImageLoadError,
                                           match=rf"'140\.png' \(row 140\): refused by {refusal}"):
        ImageFolderLoader(root, suffix=".png", n_jobs=2, target_size=(28, 28)
                          ).transform(range(150))


@pytest.mark.parametrize("limit, refusal", BOMB_LIMITS)
def test_decompression_bomb(folder, monkeypatch, limit, refusal):
    root, _ = folder
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with no_bomb_warnings(), pytest.raises(ImageLoadError, match=(
            rf"^'0\.png' \(row 0\): refused by {refusal}.*If the file is trusted, raise the "
            r"limit before loading: PIL\.Image\.MAX_IMAGE_PIXELS = .* \(None turns the guard "
            r"off\)\.$")):
        ImageFolderLoader(root, suffix=".png").transform(range(3))


def run_python(code, *args):
    """Run ``code`` in a fresh interpreter; return its last line of output read as JSON, and
    its standard error."""
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1]), result.stderr


def test_worker_processes_show_no_bomb_warning(big_folder):
    root, _ = big_folder
    code = """if True:
        import json, sys
        from PIL import Image
        from skimgclf import ImageFolderLoader
        from skimgclf.exceptions import ImageLoadError
        Image.MAX_IMAGE_PIXELS = 500
        error = None
        try:
            ImageFolderLoader(sys.argv[1], suffix=".png", n_jobs=2, target_size=(28, 28)
                              ).transform(range(150))
        except ImageLoadError as err:
            error = str(err)
        print(json.dumps(error))
        """
    error, stderr = run_python(code, root)
    assert error is not None and "refused by the decompression-bomb guard" in error
    assert "DecompressionBombWarning" not in stderr


def write_blank_png(path, width, height):
    """Write a width×height RGBA PNG of zeros without ever holding its pixels."""
    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data)))

    row, compressor = bytes(1 + 4 * width), zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
                           + chunk(b"IEND", b""))


def test_bomb_under_twice_pil_default_limit_is_refused_in_little_memory(tmp_path):
    # 169 million pixels: over PIL's default limit (89.5 million), under twice it, where PIL
    # only warns. Decoded, they would take 2.7 GB as float32 RGBA; the file takes 0.6 MB.
    write_blank_png(tmp_path / "bomb.png", 13000, 13000)
    code = """if True:
        import json, resource, sys
        from skimgclf import ImageFolderLoader
        from skimgclf.exceptions import ImageLoadError

        def peak_mib():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        baseline, error = peak_mib(), None
        try:
            ImageFolderLoader(sys.argv[1], color_mode="rgba").transform(["bomb.png"])
        except ImageLoadError as err:
            error = str(err)
        print(json.dumps({"baseline_mib": baseline, "peak_mib": peak_mib(), "error": error}))
        """
    measured, stderr = run_python(code, tmp_path)
    # Before the fix: 184 MiB after the import, a peak of 3,370 MiB after loading.
    assert measured["peak_mib"] - measured["baseline_mib"] < 200, measured
    assert "13000×13000 = 169,000,000 pixels, over PIL.Image.MAX_IMAGE_PIXELS" in measured["error"]
    assert "DecompressionBombWarning" not in stderr


@pytest.mark.parametrize("name, reason", [
    ("/etc/passwd", "absolute"),
    ("../outside.png", r"'\.\.'"),
    ("link.png", "outside image_dir"),
    ("bad\0.png", "NUL"),
])
def test_unsafe_names_are_refused_with_their_row(folder, name, reason):
    root, _ = folder
    (root.parent / "outside.png").write_bytes((root / "0.png").read_bytes())
    (root / "link.png").symlink_to(root.parent / "outside.png")
    with pytest.raises(ImageLoadError, match=rf"\(row 2\): .*{reason}"):
        ImageFolderLoader(root, suffix=".png").transform(["0.png", "1.png", name])


def test_symlink_inside_the_folder_is_allowed(folder):
    root, images = folder
    (root / "alias.png").symlink_to(root / "3.png")
    out = ImageFolderLoader(root, rescale=None, dtype="uint8").transform(["alias.png"])
    np.testing.assert_array_equal(out[0, ..., 0], images[3])


@pytest.mark.parametrize("X, message", [
    ([], "no image names; expected at least one row"),
    (pd.DataFrame({"id": []}), "no image names"),
    (pd.DataFrame(index=range(3)), "without columns; expected a column of image names"),
    ("1.png", "a single str '1.png': wrap it in a list"),
    (np.zeros((2, 2, 2)), r"got ndarray of shape \(2, 2, 2\)"),
    ([1, None, 3], r"1 values that are not image names: row 1 \(None\)"),
    (["1", ""], r"row 1 \(''\)"),
    (pd.Series([1.0, np.nan, 3.0]), r"row 1 \(nan\).*blank cells is read as floats"),
    ([True], r"row 0 \(True\)"),
    (csr_matrix(np.ones((2, 1))), "sparse input is not supported"),
])
def test_bad_x_is_a_clear_value_error(folder, X, message):
    root, _ = folder
    loader = ImageFolderLoader(root, suffix=".png")
    with pytest.raises(ValueError, match=message):
        loader.transform(X)
    with pytest.raises(ValueError, match=message):
        loader.fit(X)


def test_missing_column(folder):
    root, _ = folder
    frame = pd.DataFrame({"id": [1], "label": [0]})
    with pytest.raises(ValueError, match=r"path_column='file' is not a column of X; its "
                                         r"columns are \['id', 'label'\]"):
        ImageFolderLoader(root, path_column="file").fit(frame)


def parameter_error(name, expected, got):
    return rf"^The '{name}' parameter of ImageFolderLoader must be {expected}\. Got {got} instead"


@pytest.mark.parametrize("params, message", [
    ({"image_dir": 3}, parameter_error("image_dir", "an instance of 'str' or an instance of "
                                                    "'os.PathLike'", "3")),
    ({"color_mode": "grey"}, parameter_error("color_mode", "a str among {.*'rgba'.*}", "'grey'")),
    ({"target_size": (28, 28, 1)}, parameter_error(
        "target_size", r"None or a \(height, width\) tuple of two positive ints \(the channels "
                       r"come from color_mode\)", r"\(28, 28, 1\)")),
    ({"target_size": (0, 28)}, parameter_error("target_size", ".*", r"\(0, 28\)")),
    ({"target_size": (True, 28)}, parameter_error("target_size", ".*", r"\(True, 28\)")),
    ({"interpolation": "cubic"}, parameter_error("interpolation", "a str among {.*'bicubic'.*}",
                                                 "'cubic'")),
    ({"jpeg_draft": "yes"}, parameter_error("jpeg_draft", "an instance of 'bool'.*", "'yes'")),
    ({"dtype": "bogus"}, parameter_error("dtype", "a numpy float type such as 'float32', or an "
                                                  "integer type holding 0-255 such as 'uint8'",
                                         "'bogus'")),
    ({"dtype": "int8", "rescale": None}, parameter_error("dtype", ".*", "'int8'")),
    ({"dtype": "U3", "rescale": None}, parameter_error("dtype", ".*", "'U3'")),
    ({"dtype": "uint8"}, r"^rescale=0.00392.* needs a float dtype, but dtype='uint8'; set "
                         r"rescale=None to keep the raw 0-255 pixels, or dtype='float32'$"),
    ({"rescale": "1/255"}, parameter_error("rescale", r"None or a float in the range "
                                                      r"\(-inf, inf\)", "'1/255'")),
    ({"rescale": float("nan")}, parameter_error("rescale", ".*", "nan")),
    ({"n_jobs": 0}, parameter_error("n_jobs", r"None, an int in the range \(-inf, -1\] or an int "
                                              r"in the range \[1, inf\)", "0")),
    ({"n_jobs": 1.5}, parameter_error("n_jobs", ".*", "1.5")),
    ({"cache": 1}, parameter_error("cache", "None, an instance of 'str' or an instance of "
                                            "'os.PathLike'", "1")),
    ({"suffix": None}, parameter_error("suffix", "an instance of 'str'", "None")),
    ({"verbose": -1}, parameter_error("verbose", ".*", "-1")),
])
def test_bad_parameters_fail_in_fit_and_transform(folder, params, message):
    root, _ = folder
    loader = ImageFolderLoader(**{"image_dir": root, "suffix": ".png", **params})
    with pytest.raises(ValueError, match=message):
        loader.fit(range(3))
    with pytest.raises(ValueError, match=message):
        loader.transform(range(3))


# --- the cache -------------------------------------------------------------------------------


def test_cache_decodes_each_file_once(folder, tmp_path_factory, caplog):
    root, images = folder
    cache = tmp_path_factory.mktemp("cache")
    loader = ImageFolderLoader(root, suffix=".png", cache=cache)
    caplog.set_level(logging.INFO, logger="skimgclf.loader")
    first = loader.transform(range(12))
    again = clone(loader).transform(list(range(12))[::-1])
    np.testing.assert_array_equal(first, scaled(images))
    np.testing.assert_array_equal(again, scaled(images[::-1]))
    counts = [(r.n_images, r.n_decoded, r.n_from_cache) for r in load_records(caplog)]
    assert counts == [(12, 12, 0), (12, 0, 12)]
    # Pixels are cached before rescale and dtype, so other outputs reuse them.
    raw = clone(loader).set_params(rescale=None, dtype="uint8").transform(range(12))
    np.testing.assert_array_equal(raw[..., 0], images)
    assert load_records(caplog)[-1].n_decoded == 0


def test_cache_decodes_a_changed_file_again(folder, tmp_path_factory, caplog):
    root, images = folder
    loader = ImageFolderLoader(root, suffix=".png", rescale=None, dtype="uint8",
                               cache=tmp_path_factory.mktemp("cache"))
    loader.transform(range(12))
    Image.fromarray(images[11]).save(root / "2.png")
    os.utime(root / "2.png", ns=(0, 10**9))  # a new mtime even on a coarse clock
    caplog.set_level(logging.INFO, logger="skimgclf.loader")
    out = loader.transform(range(12))
    np.testing.assert_array_equal(out[2, ..., 0], images[11])
    assert load_records(caplog)[-1].n_decoded == 1


def test_cache_settings_are_part_of_the_key(folder, tmp_path_factory):
    root, _ = folder
    cache = tmp_path_factory.mktemp("cache")
    grey = ImageFolderLoader(root, suffix=".png", cache=cache).transform(range(4))
    rgb = ImageFolderLoader(root, suffix=".png", cache=cache, color_mode="rgb").transform(range(4))
    small = ImageFolderLoader(root, suffix=".png", cache=cache, target_size=(7, 7)
                              ).transform(range(4))
    assert grey.shape[1:] == (28, 28, 1) and rgb.shape[1:] == (28, 28, 3)
    assert small.shape[1:] == (7, 7, 1)
    entries = Counter(os.path.splitext(name)[1] for name in os.listdir(cache))
    assert entries == {".pixels": 12, ".block": 3}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three 640×427 JPEG photos, over twice the target size of 32×32: drafted at 1/8."""
    root = tmp_path_factory.mktemp("photos")
    china, flower = load_sample_image("china.jpg"), load_sample_image("flower.jpg")
    for i, pixels in enumerate((china, flower, china[:, ::-1])):
        Image.fromarray(pixels).save(root / f"{i}.jpg")
    return root


def test_jpeg_draft_off_gives_the_full_size_decode(photos):
    loader = ImageFolderLoader(photos, suffix=".jpg", color_mode="rgb", target_size=(32, 32),
                               rescale=None, dtype="uint8")
    exact = loader.set_params(jpeg_draft=False).transform(range(3))
    for i in range(3):
        with Image.open(photos / f"{i}.jpg") as image:
            expected = image.resize((32, 32), Image.Resampling.BILINEAR)
        np.testing.assert_array_equal(exact[i], expected)
    drafted = loader.set_params(jpeg_draft=True).transform(range(3))
    difference = np.abs(drafted.astype(int) - exact)
    assert 0 < difference.mean() < 3


def test_cache_keeps_drafted_and_full_size_pixels_apart(photos, tmp_path, caplog):
    params = {"suffix": ".jpg", "color_mode": "rgb", "target_size": (32, 32), "rescale": None,
              "dtype": "uint8"}
    expected = {draft: ImageFolderLoader(photos, **params, jpeg_draft=draft).transform(range(3))
                for draft in (True, False)}
    caplog.set_level(logging.INFO, logger="skimgclf.loader")
    for draft in (True, False, True):
        cached = ImageFolderLoader(photos, **params, jpeg_draft=draft, cache=tmp_path)
        np.testing.assert_array_equal(cached.transform(range(3)), expected[draft])
    assert [r.n_decoded for r in load_records(caplog)] == [3, 3, 0]


def test_cache_repeated_transform_reads_one_block(folder, tmp_path_factory, caplog):
    root, images = folder
    cache = tmp_path_factory.mktemp("cache")
    loader = ImageFolderLoader(root, suffix=".png", cache=cache)
    first = loader.transform(range(12))
    caplog.set_level(logging.INFO, logger="skimgclf.loader")
    # The block alone answers: with the image entries gone, nothing is decoded.
    for name in os.listdir(cache):
        if name.endswith(".pixels"):
            os.unlink(cache / name)
    again = clone(loader).transform(range(12))
    np.testing.assert_array_equal(again, first)
    assert type(again) is np.ndarray and again.dtype == np.float32
    assert [(r.n_decoded, r.n_from_cache) for r in load_records(caplog)] == [(0, 12)]
    # Another list of the same files is another block, built from the image entries left.
    subset = clone(loader).transform([3, 1])
    np.testing.assert_array_equal(subset, first[[3, 1]])
    assert load_records(caplog)[-1].n_decoded == 2


def test_cache_uint8_output_is_mapped_from_the_cache(folder, tmp_path_factory):
    root, images = folder
    cache = tmp_path_factory.mktemp("cache")
    loader = ImageFolderLoader(root, suffix=".png", rescale=None, dtype="uint8", cache=cache)
    for _ in range(2):  # built, then found
        mapped = loader.transform(range(12))
        assert isinstance(mapped, np.memmap)
        np.testing.assert_array_equal(mapped[..., 0], images)
        # Copy-on-write: the caller may change its array, never the cache.
        mapped[:] = 0
    np.testing.assert_array_equal(loader.transform(range(12))[..., 0], images)


def test_cache_failed_transform_leaves_no_block(folder, tmp_path_factory):
    root, images = folder
    Image.fromarray(images[0][:20]).save(root / "odd.png")
    cache = tmp_path_factory.mktemp("cache")
    loader = ImageFolderLoader(root, suffix=".png", cache=cache)
    with pytest.raises(ImageLoadError, match="differ in size"):
        loader.transform(["0", "1", "odd"])
    assert not [name for name in os.listdir(cache) if not name.endswith(".pixels")]


def flatten(images):
    return images.reshape(len(images), -1)


def pipeline(image_dir, **loader_params):
    return Pipeline([
        ("load", ImageFolderLoader(image_dir, suffix=".png", **loader_params)),
        ("flatten", FunctionTransformer(flatten)),
        ("clf", KNeighborsClassifier()),
    ])


def test_grid_search_decodes_each_file_once(layout, train, tmp_path_factory, caplog):
    frame, _, y_train = train
    model = pipeline(layout.train_dir, cache=tmp_path_factory.mktemp("cache"))
    caplog.set_level(logging.INFO, logger="skimgclf.loader")
    search = GridSearchCV(model, {"clf__n_neighbors": [1, 5]}, cv=3).fit(frame, y_train)
    records = load_records(caplog)
    # 2 candidates × 3 folds × (fit, score) + the refit on everything.
    assert len(records) == 13
    assert sum(r.n_decoded for r in records) == len(frame)
    assert search.best_score_ > 0.6


# --- scikit-learn API ------------------------------------------------------------------------


def test_pipeline_fits_and_predicts_from_the_csv(layout, train):
    frame, _, y_train = train
    model = pipeline(layout.train_dir).fit(frame[:250], y_train[:250])
    assert (model.predict(frame[250:]) == y_train[250:]).mean() > 0.6


def test_params_clone_and_pickle(layout, train):
    frame, x_train, _ = train
    loader = ImageFolderLoader(layout.train_dir, suffix=".png", target_size=(28, 28), n_jobs=2)
    params = loader.get_params()
    assert params["image_dir"] == layout.train_dir and params["target_size"] == (28, 28)
    assert list(params) == sorted(["image_dir", "path_column", "suffix", "color_mode",
                                   "target_size", "interpolation", "jpeg_draft", "rescale",
                                   "dtype", "n_jobs",
                                   "cache", "verbose"])
    twin = clone(loader)
    assert twin is not loader and twin.get_params() == params
    assert loader.fit(frame) is loader and vars(loader) == vars(twin)  # fit learns nothing
    revived = pickle.loads(pickle.dumps(loader))
    np.testing.assert_array_equal(revived.transform(frame[:3]), scaled(x_train[:3]))


def test_parameters_after_image_dir_are_keyword_only(folder):
    root, _ = folder
    with pytest.raises(TypeError, match="positional"):
        ImageFolderLoader(root, "id")


def test_scikit_learn_parameter_validation(folder):
    root, _ = folder
    check_param_validation("ImageFolderLoader", ImageFolderLoader(root))


def test_tags_declare_a_stateless_transformer_of_names():
    tags = ImageFolderLoader("x").__sklearn_tags__()
    assert tags.requires_fit is False
    assert tags.input_tags.string and tags.input_tags.categorical
    assert tags.transformer_tags.preserves_dtype == []


@pytest.fixture(scope="module")
def id_folder(fashion_sample, tmp_path_factory):
    """300 real images named 0.png … 299.png: the checks' integer X then names real files."""
    (x_train, _), _ = fashion_sample
    root = tmp_path_factory.mktemp("ids")
    for i in range(300):
        Image.fromarray(x_train[i]).save(root / f"{i}.png")
    return root


# scikit-learn's checks feed X of numbers. With the categorical tag they round it to
# non-negative integers, which name files of id_folder, so most checks really load images.
EXPECTED_FAILED_CHECKS = {
    "check_estimators_dtypes": "feeds float X; a float is not an image name (a CSV id column "
                               "read as floats means blank cells, so the loader refuses it)",
}


@parametrize_with_checks(
    [ImageFolderLoader(Path("ids-folder"), suffix=".png")],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_scikit_learn_checks(estimator, check, id_folder):
    check(estimator.set_params(image_dir=id_folder))


# --- read_class_folders ----------------------------------------------------------------------


@pytest.fixture
def class_folders(tmp_path, fashion_sample):
    """root/<class>/<n>.png for three real classes, plus files that are not images."""
    (x_train, y_train), _ = fashion_sample
    root = tmp_path / "photos"
    expected = []
    for label in (2, 0, 9):
        name = FASHION_MNIST_CLASSES[label].replace("/", "-")
        (root / name / "more").mkdir(parents=True)
        for i in np.flatnonzero(y_train == label)[:3]:
            Image.fromarray(x_train[i]).save(root / name / f"{i}.png")
            expected.append((f"{name}/{i}.png", name, x_train[i]))
        Image.fromarray(x_train[0]).save(root / name / "more" / "extra.PNG")
        expected.append((f"{name}/more/extra.PNG", name, x_train[0]))
        (root / name / "notes.txt").write_text("not an image")
        (root / name / ".hidden.png").write_bytes(b"")
    (root / ".cache").mkdir()
    (root / ".cache" / "x.png").write_bytes(b"")
    (root / "README.md").write_text("a file beside the class folders")
    return root, sorted(expected, key=lambda item: (item[1], item[0]))


def test_read_class_folders_lists_images_and_labels(class_folders):
    root, expected = class_folders
    X, y = read_class_folders(root)
    assert list(X.columns) == ["path"] and y.name == "label"
    assert X["path"].tolist() == [path for path, _, _ in expected]
    assert y.tolist() == [label for _, label, _ in expected]
    out = ImageFolderLoader(root, rescale=None, dtype="uint8").fit_transform(X, y)
    np.testing.assert_array_equal(out[..., 0], np.stack([pixels for _, _, pixels in expected]))


def test_read_class_folders_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope is not a folder"):
        read_class_folders(tmp_path / "nope")
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="no images found .*root/<class name>/<image files>"):
        read_class_folders(tmp_path)


def test_suffix_is_matched_without_case(folder):
    root, images = folder
    (root / "4.png").rename(root / "UPPER.PNG")
    out = ImageFolderLoader(root, suffix=".png", rescale=None, dtype="uint8").transform(
        ["UPPER.PNG", 5])
    np.testing.assert_array_equal(out[..., 0], images[4:6])
