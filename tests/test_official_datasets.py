import gzip
import struct

import numpy as np
import pytest
from conftest import SHARED_DATA

from skimgclf.datasets import _official, load_fashion_mnist, load_mnist

IMAGES, LABELS = 0x803, 0x801


@pytest.fixture(autouse=True)
def no_other_places(tmp_path_factory, monkeypatch):
    """Point $SKIMGCLF_DATA, Keras's cache and /usr/share/datasets at empty folders."""
    monkeypatch.delenv("SKIMGCLF_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path_factory.mktemp("keras_home")))
    monkeypatch.setattr(_official, "SYSTEM_DATASETS_DIR", tmp_path_factory.mktemp("system"))


@pytest.fixture(scope="module")
def small(fashion_sample):
    """A few hundred real images: ``(x_train, y_train), (x_test, y_test)``."""
    (x_train, y_train), (x_test, y_test) = fashion_sample
    return (x_train[:300], y_train[:300]), (x_test[:100], y_test[:100])


def idx_bytes(array, magic):
    return struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.tobytes()


def write_idx(folder, data, *, gz=True):
    """Write ``data`` as the four official idx files in ``folder``; return their paths."""
    (x_train, y_train), (x_test, y_test) = data
    folder.mkdir(parents=True, exist_ok=True)
    contents = {"x_train": idx_bytes(x_train, IMAGES), "y_train": idx_bytes(y_train, LABELS),
                "x_test": idx_bytes(x_test, IMAGES), "y_test": idx_bytes(y_test, LABELS)}
    paths = {}
    for key, content in contents.items():
        name = _official.IDX_FILES[key]
        paths[key] = folder / (f"{name}.gz" if gz else name)
        paths[key].write_bytes(gzip.compress(content) if gz else content)
    return paths


def write_npz(path, data):
    (x_train, y_train), (x_test, y_test) = data
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def assert_loaded(loaded, expected):
    (x_train, y_train), (x_test, y_test) = loaded
    for got, want in zip((x_train, y_train, x_test, y_test),
                         (expected[0][0], expected[0][1], expected[1][0], expected[1][1]),
                         strict=True):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("load", [load_fashion_mnist, load_mnist])
@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_idx_round_trip(load, gz, small, tmp_path):
    write_idx(tmp_path, small, gz=gz)
    loaded = load(tmp_path)
    assert_loaded(loaded, small)
    assert loaded[0][0].shape == (300, 28, 28) and loaded[0][0].flags.writeable


@pytest.mark.parametrize("load, name", [(load_fashion_mnist, "fashion-mnist.npz"),
                                        (load_mnist, "mnist.npz")])
def test_npz_round_trip(load, name, small, tmp_path):
    write_npz(tmp_path / name, small)
    assert_loaded(load(tmp_path), small)


def test_environment_variable_and_subfolder(small, tmp_path, monkeypatch):
    write_idx(tmp_path / "fashion-mnist", small)
    monkeypatch.setenv("SKIMGCLF_DATA", str(tmp_path))
    assert_loaded(load_fashion_mnist(), small)
    with pytest.raises(FileNotFoundError, match="MNIST was not found"):
        load_mnist()  # the fashion-mnist/ subfolder is not MNIST's


def test_debian_and_keras_places(small, monkeypatch, tmp_path):
    keras_home = tmp_path / "keras"
    write_idx(keras_home / "datasets" / "fashion-mnist", small)  # where Keras keeps it
    write_npz(keras_home / "datasets" / "mnist.npz", small)
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    assert_loaded(load_fashion_mnist(), small)
    assert_loaded(load_mnist(), small)
    # Debian's folder is looked in before Keras's cache, for Fashion-MNIST only.
    (x_train, y_train), test = small
    debian = ((x_train[::-1], y_train[::-1]), test)
    write_idx(tmp_path / "system" / "fashion-mnist", debian)
    monkeypatch.setattr(_official, "SYSTEM_DATASETS_DIR", tmp_path / "system")
    assert_loaded(load_fashion_mnist(), debian)
    assert_loaded(load_mnist(), small)


def test_keras_cache_in_home_without_keras_home(small, tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    write_npz(tmp_path / ".keras" / "datasets" / "mnist.npz", small)
    assert_loaded(load_mnist(), small)


def test_precedence(small, tmp_path, monkeypatch):
    (x_train, y_train), (x_test, y_test) = small
    # Each place holds a different slice, so the result tells which place was read.
    sets = {name: ((x_train[i::3], y_train[i::3]), (x_test, y_test))
            for i, name in enumerate(["data_home", "env", "keras"])}
    write_idx(tmp_path / "data_home", sets["data_home"])
    write_idx(tmp_path / "env", sets["env"])
    write_idx(tmp_path / "keras" / "datasets" / "fashion-mnist", sets["keras"])
    monkeypatch.setenv("SKIMGCLF_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    assert_loaded(load_fashion_mnist(tmp_path / "data_home"), sets["data_home"])
    assert_loaded(load_fashion_mnist(), sets["env"])
    monkeypatch.delenv("SKIMGCLF_DATA")
    assert_loaded(load_fashion_mnist(), sets["keras"])
    # Within one folder the .npz wins over the idx files.
    write_npz(tmp_path / "data_home" / "fashion-mnist.npz", small)
    assert_loaded(load_fashion_mnist(tmp_path / "data_home"), small)


def test_nothing_found_lists_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("SKIMGCLF_DATA", str(tmp_path / "env"))
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist(tmp_path)
    message = str(info.value)
    for place in [f"{tmp_path} (data_home)", f"{tmp_path / 'env'} ($SKIMGCLF_DATA)",
                  f"{_official.SYSTEM_DATASETS_DIR} (Debian package dataset-fashion-mnist)",
                  "datasets (Keras's cache, $KERAS_HOME)", "fashion-mnist/ subfolder",
                  "fashion-mnist.npz", "train-images-idx3-ubyte[.gz]",
                  "t10k-labels-idx1-ubyte[.gz]", "never downloads",
                  "apt install dataset-fashion-mnist"]:
        assert place in message
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path)
    assert "mnist.npz" in str(info.value) and "Debian" not in str(info.value)


def test_data_home_must_be_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_home=.*missing.* is not a folder"):
        load_mnist(tmp_path / "missing")


def test_partial_idx_set(small, tmp_path):
    write_idx(tmp_path, small)["y_test"].unlink()
    with pytest.raises(FileNotFoundError, match=r"only some .*but not t10k-labels-idx1-ubyte"):
        load_fashion_mnist(tmp_path)


def corrupt_magic(paths):
    path = paths["x_train"]
    path.write_bytes(b"\x00\x00\x08\x01" + path.read_bytes()[4:])
    return path, "magic number 0x801, expected 0x803"


def truncate_raw(paths):
    path = paths["x_test"]
    path.write_bytes(path.read_bytes()[:-28])
    return path, r"has 78372 bytes of data but its header promises 78400 \(100 x 28 x 28\)"


def truncate_header(paths):
    path = paths["y_train"]
    path.write_bytes(path.read_bytes()[:6])
    return path, "shorter than an idx header"


def wrong_image_size(paths):
    path = paths["x_test"]
    path.write_bytes(idx_bytes(np.zeros((100, 32, 32), np.uint8), IMAGES))
    return path, "images of 32x32 pixels, expected 28x28"


def mismatched_counts(paths):
    path = paths["y_train"]
    path.write_bytes(idx_bytes(np.zeros(299, np.uint8), LABELS))
    return path, "holds 300 images but .*train-labels-idx1-ubyte holds 299 labels"


def bad_label(paths):
    path = paths["y_test"]
    path.write_bytes(idx_bytes(np.full(100, 10, np.uint8), LABELS))
    return path, "label 10 at row 0 is not a class 0–9"


@pytest.mark.parametrize("damage", [corrupt_magic, truncate_raw, truncate_header,
                                    wrong_image_size, mismatched_counts, bad_label])
def test_damaged_idx_file_is_named(damage, small, tmp_path):
    path, message = damage(write_idx(tmp_path, small, gz=False))
    with pytest.raises(ValueError, match=message) as info:
        load_mnist(tmp_path)
    assert path.name in str(info.value)


def test_truncated_gzip_is_named(small, tmp_path):
    path = write_idx(tmp_path, small)["x_train"]
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz could not be decompressed"):
        load_fashion_mnist(tmp_path)


def test_damaged_npz_is_named(small, tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=small[0][0], y_train=small[0][1])
    with pytest.raises(ValueError, match=r"mnist.npz lacks the arrays \['x_test', 'y_test'\]"):
        load_mnist(tmp_path)
    write_npz(path, small)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ValueError, match="mnist.npz could not be read as an .npz file"):
        load_mnist(tmp_path)


@pytest.mark.skipif(not (SHARED_DATA / "fashion-mnist.npz").exists(),
                    reason=f"full datasets not found in {SHARED_DATA}")
def test_full_real_sets():
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(SHARED_DATA)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert x_train.mean() == pytest.approx(72.9404, abs=1e-3)
    (x_train, y_train), (x_test, y_test) = load_mnist(SHARED_DATA)
    assert x_train.shape == (60000, 28, 28) and len(y_test) == 10000
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842,
                                             5421, 5918, 6265, 5851, 5949]
    assert x_train.mean() == pytest.approx(33.3184, abs=1e-3)
