"""ImageFolderLoader: a table of image names and a folder of images → one array of pixels."""

import logging
import math
import os
from collections import Counter, namedtuple
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs
from PIL import Image
from scipy.sparse import issparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from tqdm.auto import tqdm

from ._cache import DecodedImageCache
from ._constraints import Rule
from ._images import (
    CHANNELS,
    COLOR_MODES,
    INTERPOLATIONS,
    RowName,
    decode_block,
    pil_limits,
    resolve_image_path,
    silence_bomb_warnings,
)
from .exceptions import ImageLoadError

logger = logging.getLogger(__name__)

# A progress bar for a few hundred images would only flash by.
_PROGRESS_MIN_IMAGES = 1000
# Images per parallel task: large enough that the cost of a task (~1 ms with processes)
# vanishes, small enough that the workers stay balanced and the progress bar moves.
_MAX_CHUNK = 256
# Loads of fewer images than this per worker are decoded in the calling process.
_MIN_CHUNK = 64
# A chunk's uint8 pixels stay below this, however large the images.
_MAX_CHUNK_BYTES = 8 * 2**20
# Files of this size on average take over ten times longer to decode in C than PIL's
# Python-level work on them (~70 µs a file), so threads decode them nearly in parallel.
_THREADS_MIN_FILE_BYTES = 32 * 2**10
_SHOWN = 5

_Settings = namedtuple("_Settings", "mode size resample jpeg_draft dtype rescale pil_limits")


def _is_size(value):
    return (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(side, Integral) and not isinstance(side, bool)
                    and side > 0 for side in value))


def _is_pixel_dtype(value):
    """Whether NumPy reads ``value`` as a float type, or an integer type holding 0-255."""
    try:
        dtype = np.dtype(value)
    except (TypeError, ValueError):
        return False
    return dtype.kind == "f" or (dtype.kind in "iu" and np.can_cast(np.uint8, dtype))


class ImageFolderLoader(TransformerMixin, BaseEstimator):
    """Load the images named in ``X`` from a folder into one array.

    A stateless transformer: :meth:`fit` only checks the parameters, :meth:`transform` reads
    the images. It is the first step of a pipeline whose input is the competition layout, a
    CSV of image names beside a folder of images::

        Pipeline([("load", ImageFolderLoader("train", suffix=".png")), ("cnn", CNNClassifier())])

    Files are recognised by their contents, whatever their extension. Every raster format PIL
    reads is accepted except PostScript (EPS), which PIL reads by running Ghostscript on it.

    Parameters
    ----------
    image_dir : str or path-like
        The folder holding the images. Names in ``X`` are relative to it and may not leave it:
        absolute names, names containing ``..`` and symbolic links resolving outside it are
        refused.
    path_column : str or None, default=None
        The column of a DataFrame ``X`` holding the names; None takes the first column.
        Ignored for other kinds of ``X``.
    suffix : str, default=""
        Appended to each name that does not already end with it, for CSVs holding bare ids
        (``1`` → ``1.png`` with ``suffix=".png"``).
    color_mode : {"grayscale", "rgb", "rgba"}, default="grayscale"
        Output channels: 1, 3 or 4. Every PIL mode is converted: palette images through RGBA
        when they have transparency; 16-bit images (``I;16``, ``I``) are scaled to 8 bits
        (65535 → 255), not clipped; ``F`` images are read on the 0-255 scale.
    target_size : tuple of (int, int) or None, default=None
        ``(height, width)`` to resize every image to. None keeps the files' size, which must
        then be the same for all of them.
    interpolation : {"nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"}, \
            default="bilinear"
        The resampling filter used by ``target_size``.
    jpeg_draft : bool, default=True
        Decode each JPEG file at least twice as large as ``target_size`` (both sides) at 1/2,
        1/4 or 1/8 scale, the largest that stays at least ``target_size`` (libjpeg's DCT
        scaling, PIL's draft mode), then resize it to ``target_size``. On camera-sized photos
        this loads 2 to 3 times faster than a full-size decode, and the pixels differ from it
        by about one grey level on average, less than choosing ``"bicubic"`` over
        ``"bilinear"`` changes them (see the benchmarks page). False decodes every file at
        full size: the pixels are then the full decode resized with ``interpolation``, bit for
        bit. Without ``target_size``, or for other formats, it changes nothing.
    rescale : float or None, default=1/255
        Factor applied to the 8-bit pixel values, computed in double precision and then stored
        as ``dtype``. None keeps the values 0-255.
    dtype : str or numpy dtype, default="float32"
        Type of the output. An integer type (e.g. ``"uint8"``, four times less memory than
        float32) needs ``rescale=None``.
    n_jobs : int or None, default=None
        Number of workers decoding in parallel; None means 1 unless in a
        :func:`joblib.parallel_config` context, -1 means all processors. Files under 32 KiB
        on average are decoded by worker processes, because most of the time spent on a
        small image is PIL's Python code, which threads cannot run in parallel; starting the
        processes takes a second or two the first time. Larger files, whose decoding in C
        dominates, are decoded by threads. Each worker decodes a few hundred images at a
        time; loads of under 64 images a worker are decoded in the calling process. A
        :func:`joblib.parallel_config` backend overrides this choice.
    cache : str, path-like or None, default=None
        A folder keeping the decoded pixels of every image, so that repeated transforms (the
        folds and candidates of a grid search, later runs) decode each file once. An image is
        decoded again when its file's size or modification time changes or the decode
        settings differ. Each distinct list of images loaded is kept too, as one block, so a
        repeated transform is one read; a k-fold search adds about k copies of the 8-bit
        pixels on disk. With ``dtype="uint8"`` and ``rescale=None`` the output is that block
        mapped into memory (a copy-on-write ``numpy.memmap``), so image sets larger than
        memory can be loaded, and CNNClassifier trains on them a batch at a time. The folder
        can be shared by loaders, processes and runs.
    verbose : bool, default=False
        Show a progress bar when loading 1,000 images or more.

    See Also
    --------
    read_class_folders : Names and labels for the one-folder-per-class layout.

    Notes
    -----
    Each :meth:`transform` logs one record on the ``skimgclf.loader`` logger at INFO level,
    whose attributes ``n_images``, ``n_decoded`` and ``n_from_cache`` say how many rows were
    loaded and how many files were decoded and read from ``cache``; rows naming the same file
    load it once. The loader itself keeps no state, so these counts remain readable when a
    grid search clones it.

    Examples
    --------
    >>> import pandas as pd
    >>> from skimgclf import ImageFolderLoader
    >>> train = pd.read_csv("train.csv")  # doctest: +SKIP
    >>> X = ImageFolderLoader("train", suffix=".png").fit_transform(train)  # doctest: +SKIP
    >>> X.shape  # doctest: +SKIP
    (60000, 28, 28, 1)
    """

    _parameter_constraints = {
        "image_dir": [str, os.PathLike],
        # Any label a DataFrame's column may have: fit and transform look it up in X.
        "path_column": "no_validation",
        "suffix": [str],
        "color_mode": [StrOptions(set(COLOR_MODES))],
        "target_size": [None, Rule(_is_size, "a (height, width) tuple of two positive ints "
                                              "(the channels come from color_mode)")],
        "interpolation": [StrOptions(set(INTERPOLATIONS))],
        "jpeg_draft": ["boolean"],
        "rescale": [None, Interval(Real, None, None, closed="neither")],
        "dtype": [Rule(_is_pixel_dtype, "a numpy float type such as 'float32', or an integer "
                                         "type holding 0-255 such as 'uint8'")],
        "n_jobs": [None, Interval(Integral, None, -1, closed="right"),
                   Interval(Integral, 1, None, closed="left")],
        "cache": [None, str, os.PathLike],
        "verbose": ["verbose"],
    }

    def __init__(self, image_dir, *, path_column=None, suffix="", color_mode="grayscale",
                 target_size=None, interpolation="bilinear", jpeg_draft=True, rescale=1 / 255,
                 dtype="float32", n_jobs=None, cache=None, verbose=False):
        self.image_dir = image_dir
        self.path_column = path_column
        self.suffix = suffix
        self.color_mode = color_mode
        self.target_size = target_size
        self.interpolation = interpolation
        self.jpeg_draft = jpeg_draft
        self.rescale = rescale
        self.dtype = dtype
        self.n_jobs = n_jobs
        self.cache = cache
        self.verbose = verbose

    def fit(self, X, y=None):
        """Check the parameters and that ``X`` holds image names; nothing is learned.

        No file is read: the images are loaded by :meth:`transform`.

        Parameters
        ----------
        X : DataFrame, Series, or sequence of str, pathlib.Path or int of shape (n_samples,)
            Image names, as for :meth:`transform`.
        y : ignored
            Present for the API.

        Returns
        -------
        self : ImageFolderLoader
            The loader, unchanged.
        """
        self._validate_params()
        self._settings()
        _image_names(X, self.path_column, self.suffix)
        return self

    def transform(self, X):
        """Load the images named in ``X``.

        Parameters
        ----------
        X : DataFrame, Series, or sequence of str, pathlib.Path or int of shape (n_samples,)
            Image names relative to ``image_dir``: for a DataFrame, those of ``path_column``;
            for a 2-D array, those of its first column.

        Returns
        -------
        ndarray of shape (n_samples, height, width, channels)
            The pixels × ``rescale`` as ``dtype``, in the order of ``X``; a copy-on-write
            ``numpy.memmap`` of the cache for ``dtype="uint8"``, ``rescale=None`` and a
            ``cache``.

        Raises
        ------
        ValueError
            If ``X`` holds no names, lacks ``path_column``, or holds missing (NaN) or
            non-name values.
        ImageLoadError
            If files are missing (one error for all of them), unsafe, corrupt or of different
            sizes without ``target_size``.
        """
        self._validate_params()
        settings = self._settings()
        names, labels = _image_names(X, self.path_column, self.suffix)
        root = os.path.realpath(os.fspath(self.image_dir))
        if not os.path.isdir(root):
            raise ImageLoadError(f"image_dir {os.fspath(self.image_dir)!r} is not a folder")
        rows = _Rows(names, labels, root)
        if self.cache is None:
            return self._load(rows, settings, None, _Output(len(names), settings))
        cache = DecodedImageCache(self.cache, (settings.mode, settings.size,
                                               settings.resample.name, settings.jpeg_draft))
        entry = cache.block_entry(rows.paths, rows.versions)
        block = cache.get_block(entry)
        if block is None:
            # The pixels go straight into a new block entry, unscaled, and are scaled from it.
            raw = settings._replace(dtype=np.dtype(np.uint8), rescale=None)
            output = _Output(len(names), raw, lambda shape: cache.new_block(entry, shape))
            try:
                self._load(rows, settings, cache, output)
            except BaseException:
                output.discard()
                raise
            block = cache.get_block(output.commit())
        else:
            _log_load(rows, n_decoded=0, n_from_cache=len(set(rows.paths)))
        if settings.dtype == np.uint8 and settings.rescale is None:
            return block
        return _scaled(block, settings)

    def _load(self, rows, settings, cache, output):
        """Read the images of ``rows`` into ``output``, from ``cache`` or their files."""
        # Rows naming the same file are loaded once, then copied.
        firsts, copies = _first_rows(rows.paths)
        misses = firsts
        if cache is not None:
            # Hits are read here, in order: reading an entry takes a few system calls, which
            # parallel workers would only add overhead to.
            misses = [position for position in firsts
                      if not output.put(position, cache.get(rows.cache_entry(cache, position)))]
        todo = misses
        if todo and output.array is None:
            # Without target_size the output takes the first image's size; the others are
            # checked against it.
            output.put_block([todo[0]], *_run(_task(rows, [todo[0]], None, settings, cache)))
            todo = todo[1:]

        n_workers = max(1, min(effective_n_jobs(self.n_jobs), len(todo) // _MIN_CHUNK))
        chunks = _chunks(todo, n_workers, output.image_bytes)
        shape = output.array.shape[1:]
        n_rows = len(rows.names)
        show = bool(self.verbose) and n_rows >= _PROGRESS_MIN_IMAGES
        # Worker threads decode under this thread's warning filters, which they cannot change
        # themselves: see silence_bomb_warnings.
        with silence_bomb_warnings():
            if n_workers > 1:
                # Small files are mostly PIL's Python code, which holds the GIL: processes.
                # Large ones are mostly decoding in C, which releases it: threads, which start
                # at once and write no pixels through a pipe.
                file_bytes = sum(rows.versions[position][0] for position in todo) / len(todo)
                prefer = "threads" if file_bytes >= _THREADS_MIN_FILE_BYTES else "processes"
                results = Parallel(n_jobs=n_workers, prefer=prefer, return_as="generator")(
                    _task(rows, chunk, shape, settings, cache) for chunk in chunks)
            else:
                results = (_run(_task(rows, chunk, shape, settings, cache)) for chunk in chunks)
            with tqdm(total=n_rows, initial=n_rows - len(todo), disable=not show,
                      unit="image", desc="Loading images") as bar:
                for chunk, (block, mismatched) in zip(chunks, results, strict=True):
                    output.put_block(chunk, block, mismatched)
                    bar.update(len(chunk))
        output.copy_rows(copies)
        if output.mismatched:
            raise ImageLoadError(_size_message(rows, output.array.shape[1:], output.mismatched))
        _log_load(rows, n_decoded=len(misses), n_from_cache=len(firsts) - len(misses))
        return output.array

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        # X is a column of names: strings, or integer ids naming files (``1`` → ``1.png``),
        # which are nominal values, not quantities. 1-D X is accepted too, but that tag would
        # make scikit-learn's checks pass only 1-D X, which most of them cannot index.
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        # X holds file names, so scikit-learn's numeric validation does not apply.
        tags.no_validation = True
        tags.transformer_tags.preserves_dtype = []
        return tags

    def _settings(self):
        """Return the settings derived from the parameters, validated by _validate_params.

        Raises
        ------
        ValueError
            If ``rescale`` is given with an integer ``dtype``: the one rule across two
            parameters, which ``_parameter_constraints`` cannot state.
        """
        dtype = np.dtype(self.dtype)
        if self.rescale is not None and dtype.kind != "f":
            raise ValueError(f"rescale={self.rescale!r} needs a float dtype, but dtype="
                             f"{self.dtype!r}; set rescale=None to keep the raw 0-255 pixels, "
                             "or dtype='float32'")
        size = None
        if self.target_size is not None:
            size = (int(self.target_size[1]), int(self.target_size[0]))
        return _Settings(COLOR_MODES[self.color_mode], size, INTERPOLATIONS[self.interpolation],
                         bool(self.jpeg_draft), dtype, self.rescale, pil_limits())


def read_class_folders(root):
    """List the images of a one-folder-per-class layout, ``root/<class>/<image>``.

    Image files are those whose extension PIL knows; hidden files and folders are skipped and
    sub-folders of a class folder belong to that class.

    Parameters
    ----------
    root : str or path-like
        The folder holding one folder per class.

    Returns
    -------
    X : DataFrame
        One column, ``path``: each image's path relative to ``root`` with ``/`` separators,
        sorted by class then path; feed it to ``ImageFolderLoader(root)``.
    y : Series
        The class of each image (its folder's name), named ``label``.

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a folder.
    ValueError
        If no class folder holds an image.

    Examples
    --------
    >>> from skimgclf import ImageFolderLoader, read_class_folders
    >>> X, y = read_class_folders("photos")  # doctest: +SKIP
    >>> images = ImageFolderLoader("photos", color_mode="rgb", target_size=(64, 64)).transform(X)
    ... # doctest: +SKIP
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"read_class_folders: {root} is not a folder; expected a "
                                "folder holding one folder per class")
    extensions = {extension.lower() for extension in Image.registered_extensions()}
    paths, labels = [], []
    for class_dir in sorted(root.iterdir()):
        if class_dir.name.startswith(".") or not class_dir.is_dir():
            continue
        found = []
        for folder, subfolders, files in os.walk(class_dir):
            subfolders[:] = [name for name in subfolders if not name.startswith(".")]
            found.extend(Path(folder, name).relative_to(root).as_posix() for name in files
                         if not name.startswith(".")
                         and os.path.splitext(name)[1].lower() in extensions)
        paths.extend(sorted(found))
        labels.extend([class_dir.name] * len(found))
    if not paths:
        raise ValueError(f"read_class_folders: no images found in the class folders of {root}; "
                         "expected root/<class name>/<image files>")
    return pd.DataFrame({"path": paths}), pd.Series(labels, name="label")


class _Rows:
    """The resolved files of a transform's rows, and how to name a row in an error."""

    def __init__(self, names, labels, root):
        self.names = names
        self.labels = labels
        self.root = root
        self.paths, self.versions = [], []
        for position, name in enumerate(names):
            path, status = resolve_image_path(name, root, self.where(position))
            self.paths.append(path)
            # Only what the cache key needs: whole stat results would cost ~0.5 kB a row.
            self.versions.append(None if status is None
                                 else (status.st_size, status.st_mtime_ns))
        missing = [i for i, version in enumerate(self.versions) if version is None]
        if missing:
            raise ImageLoadError(self._missing_message(missing))

    def where(self, position):
        """Return the name and row of ``position`` for messages."""
        return RowName(self.names[position], position,
                       position if self.labels is None else self.labels[position])

    def cache_entry(self, cache, position):
        """Return the entry of ``cache`` for the file of row ``position``."""
        return cache.entry(self.paths[position], self.versions[position])

    def _missing_message(self, missing):
        shown = ", ".join(repr(self.names[i]) for i in missing[:_SHOWN])
        more = f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
        message = (f"{len(missing)} of {len(self.names)} images are missing from "
                   f"{self.root}: {shown}{more}.")
        if not any(os.path.splitext(name)[1] for name in self.names):
            message += " The names have no file extension: set suffix, e.g. suffix='.png'."
        return message


def _task(rows, positions, shape, settings, cache):
    """The call decoding rows ``positions`` (see decode_block), as a joblib task.

    It carries only those rows' data, since it may run in another process, and calls a
    function of a module importing no more than NumPy and PIL, which a fresh worker process
    imports quickly.
    """
    return delayed(decode_block)(
        [rows.paths[p] for p in positions], [rows.where(p) for p in positions], shape=shape,
        mode=settings.mode, size=settings.size, resample=settings.resample,
        jpeg_draft=settings.jpeg_draft, pil_limits=settings.pil_limits, cache=cache,
        versions=None if cache is None else [rows.versions[p] for p in positions])


def _run(task):
    function, args, kwargs = task
    return function(*args, **kwargs)


def _first_rows(paths):
    """Split rows into the first naming each file and ``(rows, earlier row)`` repeating one."""
    first_of = {}
    firsts, copies = [], []
    for position, path in enumerate(paths):
        first = first_of.setdefault(path, position)
        if first == position:
            firsts.append(position)
        else:
            copies.append((position, first))
    return firsts, copies


def _chunks(positions, n_workers, image_bytes):
    """Cut ``positions`` into runs small enough to balance the workers and bound memory."""
    size = math.ceil(len(positions) / (4 * n_workers)) if n_workers > 1 else _MAX_CHUNK
    size = max(1, min(size, _MAX_CHUNK, _MAX_CHUNK_BYTES // image_bytes))
    return [positions[start:start + size] for start in range(0, len(positions), size)]


class _Output:
    """The output array, allocated once at the size of the first image unless known.

    With ``new_block``, a function of the array's shape returning a
    :class:`~skimgclf._cache.BlockWriter`, the array is that cache entry's memory map.
    """

    def __init__(self, n_images, settings, new_block=None):
        self.n_images = n_images
        self.settings = settings
        self.new_block = new_block
        self.writer = None
        self.array = None
        if settings.size is not None:
            width, height = settings.size
            self._allocate((height, width, CHANNELS[settings.mode]))
        # Rows whose size differs from the array's.
        self.mismatched = []

    @property
    def image_bytes(self):
        """The size of one decoded image in bytes (1 until the size is known)."""
        return 1 if self.array is None else self.array[0].size

    def _allocate(self, shape):
        shape = (self.n_images, *shape)
        if self.new_block is None:
            self.array = np.empty(shape, dtype=self.settings.dtype)
        else:
            self.writer = self.new_block(shape)
            self.array = self.writer.pixels

    def commit(self):
        """Put the cache entry in place; return its file."""
        self.array = None
        return self.writer.commit()

    def discard(self):
        """Drop the unfinished cache entry, if one was started."""
        self.array = None
        if self.writer is not None:
            self.writer.discard()

    def put(self, position, pixels):
        """Write ``pixels`` × rescale into row ``position``; return False for None pixels."""
        if pixels is None:
            return False
        self.put_block([position], pixels[None], [])
        return True

    def put_block(self, positions, block, mismatched):
        """Write ``block`` × rescale into rows ``positions``, except its ``mismatched`` ones."""
        if self.array is None:
            self._allocate(block.shape[1:])
        if block.shape[1:] != self.array.shape[1:]:
            mismatched = [(index, block.shape[1:]) for index in range(len(positions))]
        self.mismatched.extend((positions[index], shape) for index, shape in mismatched)
        if len(mismatched) == len(positions):
            return
        start, stop = positions[0], positions[-1] + 1
        if stop - start == len(positions):
            # The common case, consecutive rows: written in place, without a temporary.
            _scaled(block, self.settings, out=self.array[start:stop])
        else:
            self.array[positions] = _scaled(block, self.settings)

    def copy_rows(self, copies):
        """Copy rows onto rows: ``copies`` holds ``(row, row to copy)`` pairs."""
        if not copies:
            return
        targets, sources = np.array(copies).T
        self.array[targets] = self.array[sources]
        bad = dict(self.mismatched)
        self.mismatched.extend((target, bad[source]) for target, source in copies
                               if source in bad)


def _scaled(block, settings, out=None):
    """``block`` × rescale in double precision, stored as dtype (into ``out`` if given)."""
    if out is None:
        out = np.empty(block.shape, settings.dtype)
    if settings.rescale is None:
        out[...] = block
    else:
        np.multiply(block, settings.rescale, out=out)
    return out


def _log_load(rows, n_decoded, n_from_cache):
    logger.info("loaded %d images from %s: %d decoded, %d from the cache", len(rows.names),
                rows.root, n_decoded, n_from_cache,
                extra={"n_images": len(rows.names), "n_decoded": n_decoded,
                       "n_from_cache": n_from_cache})


def _image_names(X, path_column, suffix):
    """Return the names in ``X`` with ``suffix`` appended, and pandas row labels or None."""
    if isinstance(X, pd.DataFrame):
        if path_column is None:
            if X.shape[1] == 0:
                raise ValueError("X is a DataFrame without columns; expected a column of "
                                 "image names")
            column = X.iloc[:, 0]
        elif path_column in X.columns:
            column = X[path_column]
        else:
            raise ValueError(f"path_column={path_column!r} is not a column of X; its columns "
                             f"are {list(X.columns)}")
        values, labels = column.tolist(), column.index.tolist()
    elif isinstance(X, pd.Series):
        values, labels = X.tolist(), X.index.tolist()
    elif issparse(X):
        raise ValueError("X is a sparse matrix; expected image names (a DataFrame, a Series or "
                         "a sequence of names), and sparse input is not supported")
    elif isinstance(X, (str, bytes, os.PathLike)):
        raise ValueError(f"X must be a sequence of image names; got a single "
                         f"{type(X).__name__} {X!r}: wrap it in a list")
    else:
        array = np.asarray(X, dtype=object)
        if array.ndim == 2 and array.shape[1] > 0:
            array = array[:, 0]
        if array.ndim != 1:
            raise ValueError("X must be a DataFrame, a Series, a 1-D sequence of image names "
                             f"or a 2-D array of them in its first column; got "
                             f"{type(X).__name__} of shape {array.shape}")
        values, labels = array.tolist(), None
    if not values:
        raise ValueError("X holds no image names; expected at least one row")
    names, bad = [], []
    lowered = suffix.lower()
    for position, value in enumerate(values):
        if type(value) is not str:  # the common cases first: a warm cache loads at this pace
            value = _as_name(value)
        if isinstance(value, str) and value:
            names.append(value if value.lower().endswith(lowered) else value + suffix)
        else:
            bad.append(position)
    if bad:
        shown = ", ".join(f"row {i} ({values[i]!r})" for i in bad[:_SHOWN])
        more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
        hint = (" A CSV column with blank cells is read as floats with NaN: drop or fill "
                "those rows." if any(isinstance(values[i], float) for i in bad) else "")
        raise ValueError(f"X holds {len(bad)} values that are not image names: {shown}{more}; "
                         f"expected non-empty str, pathlib.Path or int.{hint}")
    return names, labels


def _as_name(value):
    """Return the name an int or a path stands for, or ``value`` itself when it is neither."""
    if type(value) is int or (isinstance(value, Integral) and not isinstance(value, bool)):
        return str(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _size_message(rows, shape, mismatched):
    sizes = Counter({shape[:2]: len(rows.names) - len(mismatched)})
    example = {shape[:2]: 0}
    for position, other in mismatched:
        sizes[other[:2]] += 1
        example.setdefault(other[:2], position)
    found = ", ".join(f"{height}×{width} ({count} images, e.g. {rows.where(example[size])})"
                      for size, count in sizes.most_common() for height, width in [size])
    return (f"the images differ in size: {found}. Set target_size=(height, width) to resize "
            "them all to one size.")
