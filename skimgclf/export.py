"""Export a fitted classifier to ONNX or TFLite: one file that predicts what skimgclf predicts.

The exported network takes what a deployer has, a batch of 8-bit images of shape
``(n, height, width, channels)`` at the size the classifier was trained on, scales them as the
pipeline did, and returns the probability of each class. Its labels and the loader's settings
travel with it, in the file's own metadata and in a JSON file beside it, ``<file>.json``, so
that a runtime without skimgclf or TensorFlow (onnxruntime, LiteRT) can reproduce ``predict``.
Keras's own exporters do the conversion: ``tf2onnx`` for ONNX (``pip install
'skimgclf[export]'``), TensorFlow's converter for TFLite. Only exporting imports them, and
scikit-learn: the command line's checks of its paths and extras answer at once.
"""

import importlib.util
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np

from . import __version__
from ._atomic import open_atomic
from ._images import COLOR_MODES

#: The formats :func:`export_model` writes: the file suffix of each, and the Python packages
#: that write it (beyond TensorFlow).
FORMATS = {"onnx": (".onnx", ("tf2onnx", "onnx")), "tflite": (".tflite", ())}
FORMAT = "skimgclf-export"
FORMAT_VERSION = 1
#: The key of the description in the file's metadata (ONNX ``metadata_props``, TFLite
#: ``metadata``).
METADATA_KEY = "skimgclf"
EXTRA_INSTALL = "pip install 'skimgclf[export]'"


def export_model(estimator, path, *, format="onnx"):
    """Write a fitted classifier as one ONNX or TFLite file, with its labels and settings.

    The exported network takes a batch of 8-bit images, ``uint8`` of shape ``(n, height,
    width, channels)`` at the size and channels the classifier was trained on, and returns
    float32 probabilities of shape ``(n, n_classes)``, columns in the order of ``classes_``.
    It computes in float32: a classifier whose ``precision_`` is a 16-bit one predicts with
    the same weights in 16-bit arithmetic, so its probabilities differ from the export's by
    that rounding (about 1e-3), as a model folder loaded where 16 bits are emulated does.
    It scales the pixels as the pipeline did: by the loader's ``rescale`` (or not at all
    without one) when the loader made floats, by 1/255 when it made 8-bit pixels or when a bare
    classifier is exported, as the classifier scales 8-bit input. Decoding, colour conversion
    and resizing stay outside, as the loader does them: with PIL, ``Image.open(f)``, then
    ``.convert(pil_mode)`` and ``.resize((width, height), interpolation)`` from the
    description (see the deployment guide).

    The description, a JSON object, is stored in the file's metadata under the key
    ``"skimgclf"`` and written beside it as ``<path>.json``: ``classes`` (the labels, as JSON
    values), ``classes_dtype``, ``input`` (``shape``, ``dtype``, ``pil_mode``,
    ``interpolation``, ``scale``) and ``loader`` (the loader's ``color_mode``,
    ``target_size``, ``interpolation``, ``rescale`` and ``dtype``; None for a bare
    classifier).

    Both files are written whole or not at all. ``path`` is replaced if it exists; the JSON
    beside it only if an earlier export wrote it.

    Parameters
    ----------
    estimator : CNNClassifier or Pipeline
        A fitted ``CNNClassifier``, or a fitted ``Pipeline`` of an ``ImageFolderLoader`` and
        one (such as :func:`~skimgclf.persistence.load_model` returns for a model folder of
        ``skimgclf train``). Its test-time augmentation (``tta``), if any, is exported too.
    path : str or path-like
        The file to write, ending in ``.onnx`` or ``.tflite`` as ``format`` says.
    format : {"onnx", "tflite"}, default="onnx"
        ONNX, for onnxruntime and most serving systems (needs ``pip install
        'skimgclf[export]'``), or TFLite, for LiteRT on phones and small devices.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ImportError
        If the packages ``format`` needs are missing; the message names the extra.
    ValueError
        If ``format`` is unknown, ``path`` ends in another format's suffix, is a folder or
        lies in a folder that does not exist, or the JSON beside it was not written by an
        export.
    TypeError
        If ``estimator`` is not such a classifier or pipeline.
    sklearn.exceptions.NotFittedError
        If the classifier is not fitted.
    """
    from sklearn.utils.validation import check_is_fitted

    path = Path(path)
    check_output(path, format)
    classifier, loader = _parts(estimator)
    check_is_fitted(classifier)
    description = _describe(classifier, loader)
    network = _network(classifier, description["input"]["scale"])
    with tempfile.TemporaryDirectory(prefix="skimgclf-export-") as scratch:
        written = Path(scratch) / f"model{FORMATS[format][0]}"
        with classifier._keras_session(), warnings.catch_warnings():
            # tf2onnx probes NumPy for names it has since removed.
            warnings.simplefilter("ignore", FutureWarning)
            network.export(written, format="onnx" if format == "onnx" else "litert",
                           verbose=False)
        data = written.read_bytes()
    text = json.dumps(description, indent=2) + "\n"
    data = _with_onnx_metadata(data, text) if format == "onnx" else _with_tflite_metadata(
        data, text)
    with open_atomic(path) as handle:
        handle.write(data)
    with open_atomic(description_path(path), "w") as handle:
        handle.write(text)
    return path


def check_output(path, format):
    """Refuse, before any work, an export that could not be written or is not installed.

    Raises
    ------
    ImportError, ValueError
        As :func:`export_model` does.
    """
    path = Path(path)
    if format not in FORMATS:
        raise ValueError(f"format={format!r} is not one of {', '.join(map(repr, FORMATS))}")
    suffix, packages = FORMATS[format]
    named = {s: name for name, (s, _) in FORMATS.items()}.get(path.suffix.lower(), format)
    if named != format:
        raise ValueError(f"{path} ends in {path.suffix}, which names a {named} file, but the "
                         f"format is {format}: name the file {path.with_suffix(suffix).name} "
                         f"or choose format {named!r}")
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"export to {format} needs {' and '.join(missing)}, which "
                          f"{'is' if len(missing) == 1 else 'are'} not installed: "
                          f"{EXTRA_INSTALL}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; name the file to write, e.g. "
                         f"{path / ('model' + suffix)}")
    if not path.parent.is_dir():
        raise ValueError(f"cannot write {path}: folder {path.parent} does not exist; create "
                         "it or choose another path")
    beside = description_path(path)
    if beside.is_dir() or (beside.exists() and not _is_description(beside)):
        raise ValueError(f"{beside} exists and was not written by an export: the export "
                         f"writes its labels and settings there; move it away or choose "
                         "another path")


def description_path(path):
    """The JSON file beside an exported ``path`` that describes it: ``<path>.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def read_description(path):
    """The description stored in the metadata of an exported ONNX or TFLite file.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`export_model`.

    Returns
    -------
    dict
        The JSON object of :func:`export_model`'s description.

    Raises
    ------
    ValueError
        If the file is not an ONNX or TFLite file, or holds no description.
    """
    path = Path(path)
    data = path.read_bytes()
    # A TFLite flatbuffer names its schema in bytes 4-8, whatever the file is called.
    if data[4:8] != b"TFL3":
        import onnx

        try:
            props = onnx.load_from_string(data).metadata_props
        except Exception as exc:  # protobuf's DecodeError, among others
            raise ValueError(f"{path} is neither an ONNX nor a TFLite file: it was not "
                             "written by export_model") from exc
        text = {prop.key: prop.value for prop in props}.get(METADATA_KEY)
    else:
        from tensorflow.lite.tools import flatbuffer_utils

        model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
        text = next((bytes(model.buffers[entry.buffer].data).decode()
                     for entry in model.metadata or ()
                     if entry.name.decode() == METADATA_KEY), None)
    if text is None:
        raise ValueError(f"{path} holds no skimgclf description: it was not written by "
                         "export_model")
    return json.loads(text)


def _parts(estimator):
    """The classifier and the loader in front of it (None for a bare classifier)."""
    from sklearn.pipeline import Pipeline

    from .classifier import CNNClassifier
    from .loader import ImageFolderLoader

    steps = [step for _, step in estimator.steps] if isinstance(estimator, Pipeline) else [
        estimator]
    *front, classifier = steps
    if (not isinstance(classifier, CNNClassifier) or len(front) > 1
            or not all(isinstance(step, ImageFolderLoader) for step in front)):
        raise TypeError("export_model takes a fitted CNNClassifier, or a Pipeline of an "
                        "ImageFolderLoader and one; got "
                        + " -> ".join(type(step).__name__ for step in steps))
    return classifier, front[0] if front else None


def _describe(classifier, loader):
    # How the classifier scales 8-bit pixels itself: a bare one's input, or a loader's uint8.
    from ._batches import _SCALE

    height, width, channels = (int(side) for side in classifier.image_shape_)
    classes = np.asarray(classifier.classes_)
    # A bare classifier's images came from elsewhere: the mode their channels call for, and the
    # loader's default filter, are the best guess.
    pil_mode = {len(mode): mode for mode in COLOR_MODES.values()}.get(channels)
    settings, interpolation, scale = None, "bilinear", _SCALE
    if loader is not None:
        dtype = np.dtype(loader.dtype)
        settings = {"color_mode": loader.color_mode,
                    "target_size": None if loader.target_size is None else [
                        int(side) for side in loader.target_size],
                    "interpolation": loader.interpolation, "rescale": loader.rescale,
                    "dtype": dtype.name}
        pil_mode, interpolation = COLOR_MODES[loader.color_mode], loader.interpolation
        if dtype != np.uint8:
            # Floats (or wider integers) reach the network as the loader made them.
            scale = 1.0 if loader.rescale is None else float(loader.rescale)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "skimgclf_version": __version__,
        "classes": classes.tolist(),
        "classes_dtype": classes.dtype.str if classes.dtype.kind != "O" else "O",
        "input": {"shape": [None, height, width, channels], "dtype": "uint8",
                  "pil_mode": pil_mode, "interpolation": interpolation, "scale": scale},
        "loader": settings,
    }


def _network(classifier, scale):
    """The classifier's network behind a layer that takes 8-bit pixels and scales them.

    With test-time augmentation, the network's outputs are averaged over the same views
    as ``predict_proba`` averages.
    """
    from ._backend import keras
    from ._precision import in_float32
    from ._tta import average_views

    with classifier._keras_session():
        # Runtimes compute in float32 wherever they run; a network trained in 16 bits keeps
        # its float32 weights, only its arithmetic becomes exact.
        model = classifier.model_ if classifier.precision_ == "float32" else in_float32(
            classifier.model_)
        images = keras.Input(shape=classifier.image_shape_, dtype="uint8", name="images")
        pixels = keras.layers.Rescaling(scale, name="scale_pixels")(images)
        proba = (model(pixels) if classifier.tta is None
                 else average_views(model, pixels, classifier.tta))
        network = keras.Model(images, proba, name="skimgclf_export")
        # Keras exports only a network that has run once.
        network(np.zeros((1, *classifier.image_shape_), np.uint8))
    return network


def _with_onnx_metadata(data, text):
    import onnx

    model = onnx.load_from_string(data)
    model.metadata_props.add(key=METADATA_KEY, value=text)
    return model.SerializeToString()


def _with_tflite_metadata(data, text):
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(text.encode(), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_KEY, len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _is_description(path):
    try:
        return json.loads(Path(path).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False
