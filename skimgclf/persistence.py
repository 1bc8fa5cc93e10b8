"""Save and load fitted models without pickle: Keras's native file plus a JSON description.

A model folder holds three files:

``model.keras``
    The trained network in Keras's native format, loaded back with ``safe_mode=True``.
``estimator.json``
    Which estimator wraps it (a bare ``CNNClassifier`` or a ``Pipeline`` whose steps are
    skimgclf estimators, ending in one), every step's ``get_params(deep=False)``, and the
    classifier's fitted state: its classes with their dtype, the column names it was fitted
    on, and the training history.
``skimgclf-manifest.json``
    The SHA-256 of every file in the folder, which loading checks before reading any.

Nothing is unpickled and only skimgclf's own classes are rebuilt, so loading a folder runs no
code from it; nor does a folder choose where anything is written (a loader's ``cache`` is not
saved).
"""

import json
import os
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from . import __version__
from ._folders import replacing_folder, verify

FORMAT = "skimgclf-model"
FORMAT_VERSION = 2
MODEL_FILE = "model.keras"
ESTIMATOR_FILE = "estimator.json"
_WHAT = "a model folder written by skimgclf's save_model"


def save_model(estimator, directory):
    """Write a fitted classifier or pipeline to a model folder.

    The folder is built beside ``directory`` and renamed into place once complete, so an
    interrupted save leaves any earlier model there untouched. An existing folder is replaced
    only when skimgclf wrote everything in it (an earlier model folder); any other non-empty
    folder is refused, so a mistyped path never deletes a user's files.

    Parameters
    ----------
    estimator : CNNClassifier or Pipeline
        A fitted ``CNNClassifier``, or a fitted ``Pipeline`` of skimgclf estimators (such as
        ``ImageFolderLoader``) ending in one. All parameters must be JSON values (numbers,
        strings, booleans, None, tuples, lists, dicts, paths). A loader's ``cache`` folder is
        not saved: where decoded images are written is the choice of whoever uses the model.
    directory : str or path-like
        The model folder to write.

    Returns
    -------
    pathlib.Path
        The model folder.

    Raises
    ------
    TypeError
        If ``estimator`` is not such a classifier or pipeline, or a parameter is not a JSON
        value (the message names it).
    sklearn.exceptions.NotFittedError
        If the classifier is not fitted.
    FileExistsError
        If ``directory`` is a file, or a folder holding files that skimgclf did not write.
    """
    directory = Path(directory)
    classifier = _final_classifier(estimator)
    check_is_fitted(classifier)
    # Describe first: a parameter that cannot be saved must fail before anything is written.
    description = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "skimgclf_version": __version__,
        "estimator": _describe_estimator(estimator),
        "fitted": _describe_fit(classifier),
    }
    with replacing_folder(directory, "model") as stage:
        classifier.model_.save(stage / MODEL_FILE)
        (stage / ESTIMATOR_FILE).write_text(json.dumps(description, indent=2) + "\n")
    return directory


def load_model(directory):
    """Load a model folder written by :func:`save_model`.

    Every file is checked against the checksum recorded when it was written before it is
    read, and the network is loaded by Keras in safe mode, which runs no code from the file.

    Parameters
    ----------
    directory : str or path-like
        The model folder.

    Returns
    -------
    CNNClassifier or Pipeline
        The estimator as saved, fitted: it predicts exactly as the saved one did, unless it
        was trained in a 16-bit precision that this machine would emulate (bfloat16 on a CPU
        without AVX-512 BF16, say): it then computes in float32, with probabilities that
        differ by the 16-bit rounding (about 1e-3), and its next ``partial_fit`` starts with a
        fresh optimizer.

    Raises
    ------
    FileNotFoundError
        If the folder or one of its files is missing.
    ValueError
        If a file is damaged or was changed since it was saved; the message names the file.
    RuntimeError
        If the installed Keras is older than the first version whose safe mode has no known
        way around it.
    """
    from ._backend import keras
    from ._network import compile_network
    from ._precision import in_float32, is_native, network_precision
    from ._safe_keras import check_keras_version, load_network

    # Before anything is read: on such a Keras no file is safe to open.
    check_keras_version(keras.__version__)
    directory = Path(directory)
    verify(directory, [ESTIMATOR_FILE, MODEL_FILE], what=_WHAT)
    description_path = directory / ESTIMATOR_FILE
    model_path = directory / MODEL_FILE
    try:
        description = json.loads(description_path.read_text())
        if description.get("format") != FORMAT:
            raise ValueError(f"'format' is {description.get('format')!r}, not {FORMAT!r}")
        if description["format_version"] != FORMAT_VERSION:
            raise ValueError(
                f"it has format version {description['format_version']}, written by skimgclf "
                f"{description.get('skimgclf_version')}; this skimgclf ({__version__}) reads "
                f"version {FORMAT_VERSION}: use the skimgclf that wrote it, or save the model "
                "again")
        estimator = _build_estimator(description["estimator"])
        fitted = description["fitted"]
        classes = _decode_classes(fitted["classes"])
        history, feature_names = fitted["history"], fitted["feature_names_in"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{description_path} is damaged or not a skimgclf model "
                         f"description: {_reason(exc)}") from exc
    try:
        network = load_network(model_path)
    except Exception as exc:
        # Keras's own advice (safe_mode=False) is no fix here: save_model never writes a
        # network that needs code to load, so this file was changed or damaged.
        raise ValueError(f"{model_path} cannot be loaded by Keras in safe mode, which runs no "
                         f"code from the file ({_reason(exc)}); save_model writes no such file, "
                         "so it was changed or damaged after saving: save the model again"
                         ) from exc
    from .classifier import CNNClassifier

    unfitted = _final_classifier(estimator)
    if not is_native(network_precision(network), unfitted.device):
        # Trained where 16-bit arithmetic is native, it would be emulated here, about ten
        # times slower; float32 computes the same weights more precisely.
        network = in_float32(network)
        compile_network(network, unfitted.optimizer, unfitted.learning_rate)
    try:
        classifier = CNNClassifier.from_network(network, classes, history=history,
                                                feature_names_in=feature_names,
                                                **unfitted.get_params(deep=False))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{description_path} does not describe {model_path}: "
                         f"{_reason(exc)}") from exc
    if isinstance(estimator, Pipeline):
        estimator.steps[-1] = (estimator.steps[-1][0], classifier)
        return estimator
    return classifier


def _final_classifier(estimator):
    from .classifier import CNNClassifier

    final = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    if not isinstance(final, CNNClassifier):
        raise TypeError("save_model takes a CNNClassifier or a Pipeline ending in one; got "
                        f"{type(estimator).__name__}"
                        + (f" ending in {type(final).__name__}" if final is not estimator else ""))
    return final


def _estimator_classes():
    # Only skimgclf's own estimators are rebuilt from a description: a model folder must not
    # be able to name arbitrary classes to import.
    from .classifier import CNNClassifier
    from .loader import ImageFolderLoader

    return {cls.__name__: cls for cls in (CNNClassifier, ImageFolderLoader)}


def _describe_estimator(estimator):
    if isinstance(estimator, Pipeline):
        params = estimator.get_params(deep=False)
        del params["steps"]
        return {"class": "Pipeline",
                "params": _encode_params(params, "the Pipeline"),
                "steps": [{"name": name, **_describe_estimator(step)}
                          for name, step in estimator.steps]}
    name = type(estimator).__name__
    if _estimator_classes().get(name) is not type(estimator):
        raise TypeError(f"cannot save a {name} step: a saved pipeline may hold only skimgclf's "
                        f"estimators ({', '.join(_estimator_classes())})")
    params = estimator.get_params(deep=False)
    if "cache" in params:
        params["cache"] = None
    return {"class": name, "params": _encode_params(params, name)}


def _build_estimator(description):
    params = {name: _decode(value) for name, value in description["params"].items()}
    if description["class"] == "Pipeline":
        steps = [(step["name"], _build_estimator(step)) for step in description["steps"]]
        return Pipeline(steps, **params)
    cls = _estimator_classes().get(description["class"])
    if cls is None:
        raise ValueError(f"unknown estimator class {description['class']!r}")
    if params.get("cache") is not None:
        raise ValueError(f"its {cls.__name__} names the cache folder {params['cache']!r}, but "
                         "save_model never saves one: a model folder does not choose where "
                         "files are written")
    return cls(**params)


def _describe_fit(classifier):
    feature_names = getattr(classifier, "feature_names_in_", None)
    return {
        "classes": _encode_classes(classifier.classes_),
        "feature_names_in": None if feature_names is None else [str(n) for n in feature_names],
        "history": {key: [float(v) for v in values]
                    for key, values in classifier.history_.items()},
    }


def _encode_classes(classes):
    classes = np.asarray(classes)
    values = classes.tolist()
    if not all(isinstance(value, (str, int, float, bool)) for value in values):
        raise TypeError("cannot save classes_ as JSON: labels must be strings, integers, "
                        f"floats or booleans; got {classes[:5]!r}")
    return {"values": values, "dtype": classes.dtype.str if classes.dtype.kind != "O" else "O"}


def _decode_classes(encoded):
    return np.array(encoded["values"], dtype=np.dtype(encoded["dtype"]))


def _encode_params(params, owner):
    encoded = {}
    for name, value in params.items():
        try:
            encoded[name] = _encode(value)
        except TypeError as exc:
            raise TypeError(f"cannot save parameter {name!r} of {owner}: {exc}; set it to a JSON "
                            "value (e.g. None) before saving") from None
    return encoded


def _encode(value):
    # JSON has no tuples, paths or non-string keys; tag them so that they come back as given
    # (GridSearchCV-style parameters such as filters=(32, 64) must stay tuples).
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float, np.integer, np.floating, np.bool_)):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(item) for item in value]}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if isinstance(value, os.PathLike):
        return {"__path__": os.fspath(value)}
    if isinstance(value, dict):
        return {"__dict__": [[_encode(key), _encode(item)] for key, item in value.items()]}
    raise TypeError(f"{value!r} is not a JSON value")


def _decode(value):
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"__tuple__"}:
        return tuple(_decode(item) for item in value["__tuple__"])
    if set(value) == {"__path__"}:
        return Path(value["__path__"])
    if set(value) == {"__dict__"}:
        return {_hashable(_decode(key)): _decode(item) for key, item in value["__dict__"]}
    raise ValueError(f"unexpected value {value!r} among the parameters")


def _hashable(key):
    return tuple(key) if isinstance(key, list) else key


def _reason(exc):
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
