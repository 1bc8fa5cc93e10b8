"""Tests for skimgclf._safe_keras: crafted ``.keras`` files run no code, old Keras is refused.

Every payload is first loaded with ``safe_mode=False`` to prove that it really runs code (it
creates a marker file); only then does refusing it in safe mode prove anything. Payloads that
Keras 3.15 refuses even with ``safe_mode=False`` are left out for that reason: a layer config
naming ``os.system``, ``subprocess.Popen`` or ``builtins.exec``, a ``Lambda`` whose function
names ``os.system``, and a functional node calling ``os.system`` with a command (the
CVE-2025-1550 shape) all fail to resolve a callable outside Keras, whatever the safe mode.
"""

import configparser
import json
import re
import warnings
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.backend.common import global_state
from keras.src.saving import serialization_lib

from skimgclf._safe_keras import MIN_KERAS, check_keras_version, load_network

# Every refusal of Keras's safe mode ends with how to lift it; other errors do not.
REFUSED = "safe_mode=False"


def _touching(marker):
    """A lambda that creates the file ``marker`` and returns its input unchanged.

    ``marker`` is a str captured by the lambda, so Keras serializes it with the bytecode.
    """
    marker = str(marker)
    return lambda x: (open(marker, "w").close(), x)[1]


def _tiny_model():
    inputs = keras.Input((2,))
    return keras.Model(inputs, keras.layers.Dense(1)(inputs))


def _lambda_layer(tmp_path, marker):
    """A ``Lambda`` layer whose function is Python bytecode: it runs while the model is rebuilt."""
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Lambda(_touching(marker))(inputs))
    path = tmp_path / "lambda_layer.keras"
    model.save(path)
    return path


def _lambda_activation(tmp_path, marker):
    """A ``Dense`` layer whose activation is a serialized lambda: it runs on the first call.

    Keras's own saving drops the lambda's ``__lambda__`` tag from an activation, so the
    config of a real model is rewritten with the full serialized form instead.
    """
    path = tmp_path / "lambda_activation.keras"
    _tiny_model().save(path)
    with zipfile.ZipFile(path) as archive:
        members = {member: archive.read(member) for member in archive.namelist()}
    config = json.loads(members["config.json"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "The object being serialized includes…"
        lambda_config = keras.saving.serialize_keras_object(_touching(marker))
    config["config"]["layers"][1]["config"]["activation"] = lambda_config
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, content)
    return path


class _WritesOnLoad(tf.saved_model.experimental.TrackableResource):
    """A resource whose initializer writes a file: TensorFlow runs it when loading the model."""

    def __init__(self, marker):
        super().__init__()
        self._marker = str(marker)

    def _create_resource(self):
        return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="")

    def _initialize(self):
        return tf.io.write_file(self._marker, "ran")


def _tfsm_layer(tmp_path, marker):
    """A ``TFSMLayer`` loading a SavedModel whose graph writes a file (CVE-2026-1462)."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TFSMLayer needs the TensorFlow backend")
    module = tf.Module()
    module.trap = _WritesOnLoad(marker)
    module.serve = tf.function(tf.identity, input_signature=[tf.TensorSpec([None, 2])])
    tf.saved_model.save(module, str(tmp_path / "saved_model"))
    inputs = keras.Input((2,))
    layer = keras.layers.TFSMLayer(str(tmp_path / "saved_model"))
    path = tmp_path / "tfsm_layer.keras"
    keras.Model(inputs, layer(inputs)).save(path)
    return path


@pytest.mark.parametrize("build, runs_on", [
    (_lambda_layer, "load"),
    (_lambda_activation, "call"),
    (_tfsm_layer, "load"),
], ids=["lambda-layer-bytecode", "serialized-lambda-activation", "tfsm-layer-savedmodel"])
def test_payload_that_runs_on_an_unsafe_load_is_refused_without_running(build, runs_on,
                                                                        tmp_path):
    marker = tmp_path / "ran"
    path = build(tmp_path, marker)
    marker.unlink(missing_ok=True)  # building a payload may run it once
    model = keras.saving.load_model(path, safe_mode=False)
    if runs_on == "call":
        model(np.zeros((1, 2), dtype="float32"))
    assert marker.exists(), "the payload no longer runs on an unsafe load, so it proves nothing"
    marker.unlink()
    with pytest.raises((ValueError, TypeError), match=REFUSED):
        load_network(path)
    assert not marker.exists()


@pytest.fixture
def unsafe_deserialization_enabled():
    """Keras's global switch turned off safe mode, as a user's earlier code may have done."""
    before = serialization_lib.in_safe_mode()
    keras.config.enable_unsafe_deserialization()
    yield
    global_state.set_global_attribute("safe_mode_saving", before)


def test_safe_mode_holds_after_unsafe_deserialization_was_enabled(tmp_path,
                                                                  unsafe_deserialization_enabled):
    marker = tmp_path / "ran"
    path = _lambda_layer(tmp_path, marker)
    marker.unlink()
    # Why load_network sets the scope: the global switch overrides safe_mode=True.
    keras.saving.load_model(path, safe_mode=True)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(ValueError, match=REFUSED):
        load_network(path)
    assert not marker.exists()
    assert serialization_lib.in_safe_mode() is False, "the user's own setting is restored"


@pytest.mark.parametrize("version", ["3.8.0", "3.13.9", "2.15.0", "3.9"])
def test_keras_older_than_the_minimum_is_refused_before_the_file_is_opened(monkeypatch,
                                                                          tmp_path, version):
    monkeypatch.setattr(keras, "__version__", version)
    message = (rf'^Keras {version} is installed, but skimgclf needs Keras >= 3\.14\.0 .*known '
               r'bypasses that run code from a model file.*pip install --upgrade "keras>=3\.14')
    with pytest.raises(RuntimeError, match=message):
        load_network(tmp_path / "missing.keras")


@pytest.mark.parametrize("version", ["", "unknown", "v", "3"])
def test_keras_version_that_cannot_be_read_is_refused(version):
    with pytest.raises(RuntimeError, match="needs Keras >= 3.14.0"):
        check_keras_version(version)


@pytest.mark.parametrize("version", ["3.14.0", "3.15.1", "3.14.0.dev20260101", "3.14.0rc1",
                                     "3.14", "4.0.0"])
def test_keras_at_or_above_the_minimum_loads(monkeypatch, tmp_path, version):
    _tiny_model().save(tmp_path / "model.keras")
    monkeypatch.setattr(keras, "__version__", version)
    assert isinstance(load_network(tmp_path / "model.keras"), keras.Model)


def test_setup_cfg_floor_is_the_minimum_and_installed_keras_meets_it():
    # pip must never install a Keras that load_network then refuses, nor allow a vulnerable one.
    requirements = configparser.ConfigParser()
    requirements.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    floor = re.search(r"^keras>=([\d.]+)$", requirements["options"]["install_requires"], re.M)
    assert floor, "setup.cfg names no keras>= floor"
    release = tuple(int(part) for part in floor.group(1).split("."))
    assert release + (0,) * (3 - len(release)) == MIN_KERAS
    check_keras_version(keras.__version__)
