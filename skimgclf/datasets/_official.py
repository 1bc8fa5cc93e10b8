"""The full MNIST and Fashion-MNIST, read from files already on disk (never downloaded)."""

import gzip
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Debian's ``dataset-fashion-mnist`` installs the four idx files under
# /usr/share/datasets/fashion-mnist; Debian has no MNIST package. Module-level so tests can point
# it elsewhere.
SYSTEM_DATASETS_DIR = Path("/usr/share/datasets")

# The official file names, without ``.gz``, keyed by the array each one holds.
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_MAGIC = {3: 0x803, 1: 0x801}  # unsigned bytes (0x08), in 3 or 1 dimensions
_IMAGE_SHAPE = (28, 28)
_N_CLASSES = 10


@dataclass(frozen=True)
class _Dataset:
    name: str
    folder: str  # subfolder looked in within each place, and stem of the .npz
    in_system_dir: bool
    how_to_get: str

    @property
    def npz(self):
        return f"{self.folder}.npz"


_FASHION_MNIST = _Dataset(
    "Fashion-MNIST", "fashion-mnist", True,
    "Install Debian's package (`apt install dataset-fashion-mnist`), take the four .gz files "
    "from https://github.com/zalandoresearch/fashion-mnist, or run "
    "`keras.datasets.fashion_mnist.load_data()` once on a machine with internet access.",
)
_MNIST = _Dataset(
    "MNIST", "mnist", False,
    "Take the four .gz files from https://yann.lecun.com/exdb/mnist/ or Keras's mnist.npz "
    "(`keras.datasets.mnist.load_data()` saves it to ~/.keras/datasets on a machine with "
    "internet access).",
)


def load_fashion_mnist(data_home=None):
    """Load the full Fashion-MNIST (60,000 training and 10,000 test images) from disk.

    Reads either the four official idx files (``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
    gzipped with ``.gz`` or not) or ``fashion-mnist.npz`` with arrays ``x_train``, ``y_train``,
    ``x_test``, ``y_test``. Each place below is looked in, and then its ``fashion-mnist/``
    subfolder; in one folder the ``.npz`` wins over idx files and ``.gz`` over uncompressed:

    1. ``data_home``;
    2. the folder named by the environment variable ``SKIMGCLF_DATA``;
    3. ``/usr/share/datasets`` (Debian's package ``dataset-fashion-mnist``);
    4. Keras's cache, ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``, where
       ``keras.datasets.fashion_mnist.load_data()`` keeps the idx files.

    Nothing is ever downloaded. The names of the labels are
    :data:`~skimgclf.datasets.FASHION_MNIST_CLASSES`.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Folder to look in first. It must exist when given.

    Returns
    -------
    (x_train, y_train), (x_test, y_test) : tuple of tuple of ndarray
        ``x_*`` are uint8 arrays of shape ``(n, 28, 28)``, ``y_*`` uint8 labels 0–9.

    Raises
    ------
    FileNotFoundError
        When no place holds the data; the message lists every folder looked in and where to
        get the files. Also when ``data_home`` is not a folder, or a folder holds only some of
        the four idx files.
    ValueError
        When a file is corrupt or truncated, or the files disagree; the message names the file.
    """
    return _load(_FASHION_MNIST, data_home)


def load_mnist(data_home=None):
    """Load the full MNIST handwritten digits (60,000 training and 10,000 test) from disk.

    Reads either the four official idx files (``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
    gzipped with ``.gz`` or not) or ``mnist.npz`` with arrays ``x_train``, ``y_train``,
    ``x_test``, ``y_test`` (the file ``keras.datasets.mnist.load_data()`` keeps). Each place
    below is looked in, and then its ``mnist/`` subfolder; in one folder the ``.npz`` wins over
    idx files and ``.gz`` over uncompressed:

    1. ``data_home``;
    2. the folder named by the environment variable ``SKIMGCLF_DATA``;
    3. Keras's cache, ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``.

    Nothing is ever downloaded.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Folder to look in first. It must exist when given.

    Returns
    -------
    (x_train, y_train), (x_test, y_test) : tuple of tuple of ndarray
        ``x_*`` are uint8 arrays of shape ``(n, 28, 28)``, ``y_*`` uint8 labels 0–9.

    Raises
    ------
    FileNotFoundError
        When no place holds the data; the message lists every folder looked in and where to
        get the files. Also when ``data_home`` is not a folder, or a folder holds only some of
        the four idx files.
    ValueError
        When a file is corrupt or truncated, or the files disagree; the message names the file.
    """
    return _load(_MNIST, data_home)


def _load(dataset, data_home):
    if data_home is not None and not Path(data_home).is_dir():
        raise FileNotFoundError(f"data_home={str(data_home)!r} is not a folder; pass the folder "
                                f"that holds {dataset.npz} or the four idx files")
    tried = []
    for place, note in _places(dataset, data_home):
        tried.append(f"  {place} ({note})")
        for folder in (place, place / dataset.folder):
            arrays = _read_folder(dataset, folder)
            if arrays is not None:
                return arrays
    looked_for = ", ".join(f"{name}[.gz]" for name in IDX_FILES.values())
    raise FileNotFoundError(
        f"{dataset.name} was not found. Looked for {dataset.npz} or the four idx files "
        f"{looked_for} in each of these folders and in its {dataset.folder}/ subfolder:\n"
        + "\n".join(tried) + "\n"
        f"skimgclf never downloads data. {dataset.how_to_get} Then pass the folder as "
        "data_home or set SKIMGCLF_DATA to it."
    )


def _places(dataset, data_home):
    """``(folder, note)`` pairs in the order they are looked in; notes explain them in errors."""
    if data_home is not None:
        yield Path(data_home), "data_home"
    env = os.environ.get("SKIMGCLF_DATA")
    if env:
        yield Path(env), "$SKIMGCLF_DATA"
    if dataset.in_system_dir:
        yield SYSTEM_DATASETS_DIR, f"Debian package dataset-{dataset.folder}"
    keras_home = os.environ.get("KERAS_HOME")
    if keras_home:
        yield Path(keras_home) / "datasets", "Keras's cache, $KERAS_HOME"
    else:
        yield Path.home() / ".keras" / "datasets", "Keras's cache"


def _read_folder(dataset, folder):
    """The four arrays from ``folder``, or None where it holds none of the dataset's files."""
    npz = folder / dataset.npz
    if npz.is_file():
        return _read_npz(npz)
    paths = {key: _idx_path(folder, name) for key, name in IDX_FILES.items()}
    found = {key: path for key, path in paths.items() if path is not None}
    if not found:
        return None
    if len(found) < len(IDX_FILES):
        missing = [f"{IDX_FILES[key]}[.gz]" for key in IDX_FILES if key not in found]
        raise FileNotFoundError(
            f"{folder} holds only some of {dataset.name}'s idx files: "
            f"{', '.join(p.name for p in found.values())} but not {', '.join(missing)}. "
            "Add the missing files or remove the partial set."
        )
    arrays = {key: _read_idx(path, ndim=3 if key.startswith("x_") else 1)
              for key, path in found.items()}
    for split in ("train", "test"):
        _check_split(arrays[f"x_{split}"], arrays[f"y_{split}"], found[f"x_{split}"],
                     found[f"y_{split}"])
    return ((arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"]))


def _idx_path(folder, name):
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path, ndim):
    """Decode one idx file of unsigned bytes, checking its header against its length."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path} could not be decompressed ({exc}); the file is corrupt or "
                         "truncated, fetch it again") from exc
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(f"{path} is {len(data)} bytes, shorter than an idx header "
                         f"({header_size} bytes); the file is truncated, fetch it again")
    magic, *shape = struct.unpack(f">{1 + ndim}I", data[:header_size])
    if magic != _IDX_MAGIC[ndim]:
        raise ValueError(f"{path} starts with magic number {magic:#x}, expected "
                         f"{_IDX_MAGIC[ndim]:#x} (idx {'images' if ndim == 3 else 'labels'} "
                         "of unsigned bytes); it is not an idx file of this kind")
    if ndim == 3 and tuple(shape[1:]) != _IMAGE_SHAPE:
        raise ValueError(f"{path} holds images of {shape[1]}x{shape[2]} pixels, expected "
                         f"{_IMAGE_SHAPE[0]}x{_IMAGE_SHAPE[1]}")
    expected = header_size + int(np.prod(shape))
    if len(data) != expected:
        raise ValueError(f"{path} has {len(data) - header_size} bytes of data but its header "
                         f"promises {expected - header_size} ({' x '.join(map(str, shape))}); "
                         "the file is truncated or corrupt, fetch it again")
    # A bytearray makes the array writable, as np.load's arrays are.
    return np.frombuffer(bytearray(data), dtype=np.uint8, offset=header_size).reshape(shape)


def _read_npz(path):
    # A corrupt archive fails on opening or only when a member is decompressed, with any of these.
    unreadable = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error)
    # Our own handle: np.load leaks the one it opens when the archive is corrupt.
    with open(path, "rb") as handle:
        try:
            data = np.load(handle, allow_pickle=False)
        except unreadable as exc:
            raise _corrupt_npz(path, exc) from exc
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{path} holds a single array, not an .npz archive of the arrays "
                             f"{list(IDX_FILES)}")
        with data:
            found = data.files
            try:
                arrays = {key: data[key] for key in IDX_FILES if key in found}
            except unreadable as exc:
                raise _corrupt_npz(path, exc) from exc
    if len(arrays) < len(IDX_FILES):
        missing = [key for key in IDX_FILES if key not in arrays]
        raise ValueError(f"{path} lacks the arrays {missing}; it holds {found}, expected "
                         f"{list(IDX_FILES)}")
    for key, array in arrays.items():
        if array.dtype != np.uint8:
            raise ValueError(f"{path}: {key} has dtype {array.dtype}, expected uint8")
    for split in ("train", "test"):
        _check_split(arrays[f"x_{split}"], arrays[f"y_{split}"], f"{path} ({split})",
                     f"{path} ({split})")
    return ((arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"]))


def _corrupt_npz(path, exc):
    return ValueError(f"{path} could not be read as an .npz file ({exc}); the file is corrupt or "
                      "truncated")


def _check_split(x, y, x_source, y_source):
    if x.ndim != 3 or x.shape[1:] != _IMAGE_SHAPE:
        raise ValueError(f"{x_source}: images have shape {x.shape}, expected "
                         f"(n, {_IMAGE_SHAPE[0]}, {_IMAGE_SHAPE[1]})")
    if y.ndim != 1:
        raise ValueError(f"{y_source}: labels have shape {y.shape}, expected (n,)")
    if len(x) != len(y):
        raise ValueError(f"{x_source} holds {len(x)} images but {y_source} holds {len(y)} "
                         "labels; the files come from different sets")
    if len(y) and y.max() >= _N_CLASSES:
        row = int(np.argmax(y >= _N_CLASSES))
        raise ValueError(f"{y_source}: label {y[row]} at row {row} is not a class 0–9; the file "
                         "is corrupt")
