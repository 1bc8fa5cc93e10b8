"""Model folders: Keras's native file plus JSON, atomic writes, clear errors on damage."""

import hashlib
import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from skimgclf import CNNClassifier, ImageFolderLoader
from skimgclf.datasets import FASHION_MNIST_CLASSES
from skimgclf.persistence import ESTIMATOR_FILE, MODEL_FILE, load_model, save_model

# Keras's model.save (also behind pickling) converts TensorFlow variables in a way NumPy 2
# deprecates; that is between those two libraries.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

TINY = {"filters": (8,), "dense_units": 16, "dense_dropout": 0.0, "learning_rate": 0.005,
        "epochs": 1, "random_state": 0}


@pytest.fixture(scope="module")
def images(fashion_sample):
    (x_train, y_train), (x_test, _) = fashion_sample
    return x_train[:200] / np.float32(255), y_train[:200], x_test[:50] / np.float32(255)


@pytest.fixture(scope="module")
def fitted(images):
    x_train, y_train, _ = images
    return CNNClassifier(**TINY, class_weight={0: 2.0, 3: 0.5}).fit(x_train, y_train)


@pytest.fixture(scope="module")
def fitted_pipeline(small_layout):
    layout, *_ = small_layout
    train = pd.read_csv(layout.train_csv)
    names = np.array(FASHION_MNIST_CLASSES)[train["label"]]
    pipe = Pipeline([("load", ImageFolderLoader(layout.train_dir, suffix=".png")),
                     ("cnn", CNNClassifier(**TINY))])
    return pipe.fit(train[["id"]], names)


def _siblings(directory):
    return sorted(path.name for path in directory.parent.iterdir())


def test_classifier_round_trip(fitted, images, tmp_path):
    _, _, x_test = images
    directory = save_model(fitted, tmp_path / "model")
    assert sorted(p.name for p in directory.iterdir()) == [ESTIMATOR_FILE, MODEL_FILE]
    loaded = load_model(directory)
    assert type(loaded) is CNNClassifier
    assert loaded.get_params() == fitted.get_params()  # tuples and int-keyed dicts survive
    assert loaded.classes_.dtype == fitted.classes_.dtype
    np.testing.assert_array_equal(loaded.classes_, fitted.classes_)
    assert loaded.history_ == fitted.history_
    assert (loaded.n_features_in_, loaded.image_shape_) == (784, (28, 28, 1))
    np.testing.assert_array_equal(loaded.predict_proba(x_test), fitted.predict_proba(x_test))
    assert isinstance(loaded.predict(x_test)[0], np.integer)


def test_pipeline_round_trip_keeps_string_labels(fitted_pipeline, small_layout, tmp_path):
    layout, *_ = small_layout
    test = pd.read_csv(layout.test_csv)
    loaded = load_model(save_model(fitted_pipeline, tmp_path / "model"))
    assert [name for name, _ in loaded.steps] == ["load", "cnn"]
    assert loaded["load"].get_params() == fitted_pipeline["load"].get_params()
    for pipe in (fitted_pipeline, loaded):
        pipe.set_params(load__image_dir=layout.test_dir)
    predicted = loaded.predict(test[["id"]])
    np.testing.assert_array_equal(predicted, fitted_pipeline.predict(test[["id"]]))
    assert set(predicted) <= set(FASHION_MNIST_CLASSES)


def test_loaded_classifier_trains_on(fitted, images, tmp_path):
    x_train, y_train, _ = images
    loaded = load_model(save_model(fitted, tmp_path / "model"))
    loaded.partial_fit(x_train, y_train)
    assert len(loaded.history_["loss"]) == len(fitted.history_["loss"]) + 1


def test_description_is_plain_json(fitted, tmp_path):
    description = json.loads((save_model(fitted, tmp_path / "m") / ESTIMATOR_FILE).read_text())
    assert description["format_version"] == 1
    assert description["estimator"]["class"] == "CNNClassifier"
    assert description["estimator"]["params"]["filters"] == {"__tuple__": [8]}
    assert description["fitted"]["classes"] == {"values": list(range(10)),
                                                "dtype": fitted.classes_.dtype.str}


def test_saving_replaces_a_model_whole_and_leaves_nothing_behind(fitted, images, tmp_path):
    x_train, y_train, x_test = images
    directory = save_model(fitted, tmp_path / "model")
    (directory / "stale.txt").write_text("from an older model")
    other = CNNClassifier(**{**TINY, "random_state": 1}).fit(x_train, y_train)
    save_model(other, directory)
    assert not (directory / "stale.txt").exists()
    assert _siblings(directory) == ["model"]
    np.testing.assert_array_equal(load_model(directory).predict_proba(x_test),
                                  other.predict_proba(x_test))


def test_a_folder_of_other_files_is_refused_untouched(fitted, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="did not write"):
        save_model(fitted, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_failed_save_keeps_the_previous_model(fitted, images, tmp_path, monkeypatch):
    _, _, x_test = images
    directory = save_model(fitted, tmp_path / "model")

    def crash(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_model(fitted, directory)
    monkeypatch.undo()
    assert _siblings(directory) == ["model"]
    np.testing.assert_array_equal(load_model(directory).predict_proba(x_test),
                                  fitted.predict_proba(x_test))


def test_unsaveable_estimators_fail_before_writing(fitted, images, tmp_path):
    x_train, y_train, _ = images
    target = tmp_path / "model"
    callback = CNNClassifier(**TINY, callbacks=[keras.callbacks.TerminateOnNaN()])
    with pytest.raises(TypeError, match="parameter 'callbacks' of CNNClassifier"):
        save_model(callback.fit(x_train[:20], y_train[:20]), target)
    with pytest.raises(NotFittedError):
        save_model(CNNClassifier(), target)
    with pytest.raises(TypeError, match="ending in LogisticRegression"):
        save_model(Pipeline([("lr", LogisticRegression())]), target)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("missing", [ESTIMATOR_FILE, MODEL_FILE])
def test_missing_file_is_named(fitted, tmp_path, missing):
    directory = save_model(fitted, tmp_path / "model")
    (directory / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing):
        load_model(directory)


def test_changed_network_file_is_refused(fitted, tmp_path):
    directory = save_model(fitted, tmp_path / "model")
    with open(directory / MODEL_FILE, "ab") as file:
        file.write(b"\0")
    with pytest.raises(ValueError, match=f"{MODEL_FILE} does not match the checksum"):
        load_model(directory)


@pytest.mark.parametrize(("edit", "match"), [
    (lambda text: text[:-20], "damaged"),
    (lambda text: text.replace('"CNNClassifier"', '"os.system"'), "unknown estimator class"),
    (lambda text: text.replace('"format_version": 1', '"format_version": 99'), "upgrade"),
    (lambda text: text.replace('"n_features_in": 784', '"n_features_in": 78'),
     "does not describe"),
    (lambda text: text.replace('"image_shape": [\n      28', '"image_shape": [\n      27'),
     "does not describe"),
])
def test_changed_description_is_refused(fitted, tmp_path, edit, match):
    directory = save_model(fitted, tmp_path / "model")
    path = directory / ESTIMATOR_FILE
    path.write_text(edit(path.read_text()))
    with pytest.raises(ValueError, match=match) as error:
        load_model(directory)
    assert ESTIMATOR_FILE in str(error.value)


def test_accepts_str_and_path(fitted, tmp_path):
    save_model(fitted, str(tmp_path / "a"))
    assert isinstance(load_model(str(tmp_path / "a")), CNNClassifier)
    assert isinstance(load_model(Path(tmp_path / "a")), CNNClassifier)


# Tampered model folders: whoever can write the folder can also fix up the checksum, so Keras's
# safe mode is what must stop code from running.


def _rewrite_network(directory, model):
    """Replace the folder's network by ``model``, recording its checksum as save_model does."""
    model.save(directory / MODEL_FILE)
    _record_checksum(directory)


def _record_checksum(directory):
    path = directory / ESTIMATOR_FILE
    description = json.loads(path.read_text())
    digest = hashlib.sha256((directory / MODEL_FILE).read_bytes()).hexdigest()
    description["fitted"]["model_sha256"] = digest
    path.write_text(json.dumps(description))


def test_lambda_layer_with_code_is_refused_without_running_it(fitted, tmp_path):
    directory = save_model(fitted, tmp_path / "model")
    ran = tmp_path / "ran.txt"
    # A str, not a Path, for Keras to serialize with the lambda.
    marker = str(ran)
    inputs = keras.Input(fitted.image_shape_)
    trap = keras.layers.Lambda(lambda x: (open(marker, "w").close(), x)[1])
    _rewrite_network(directory, keras.Model(inputs, fitted.model_(trap(inputs))))
    ran.unlink()  # building the model ran the lambda once
    with pytest.raises(ValueError, match=rf"{MODEL_FILE} cannot be loaded.*Lambda.*save the "
                                         "model again"):
        load_model(directory)
    assert not ran.exists()


@pytest.mark.parametrize("module, name", [("os", "system"), ("subprocess", "Popen"),
                                          ("builtins", "exec")])
def test_config_naming_a_module_outside_keras_is_refused(fitted, tmp_path, module, name):
    directory = save_model(fitted, tmp_path / "model")
    ran = tmp_path / "ran.txt"
    with zipfile.ZipFile(directory / MODEL_FILE) as archive:
        members = {member: archive.read(member) for member in archive.namelist()}
    config = json.loads(members["config.json"])
    layer = config["config"]["layers"][1]
    layer.update(module=module, class_name=name, registered_name=None)
    layer["config"].update(command=f"touch {ran}", args=["touch", str(ran)])
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(directory / MODEL_FILE, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, content)
    _record_checksum(directory)
    with pytest.raises(ValueError, match=f"{MODEL_FILE} cannot be loaded"):
        load_model(directory)
    assert not ran.exists()


def test_damaged_network_with_a_matching_checksum_is_named(fitted, tmp_path):
    directory = save_model(fitted, tmp_path / "model")
    content = bytearray((directory / MODEL_FILE).read_bytes())
    content[len(content) // 2:len(content) // 2 + 64] = bytes(64)
    (directory / MODEL_FILE).write_bytes(bytes(content))
    _record_checksum(directory)
    with pytest.raises(ValueError, match=f"{MODEL_FILE} cannot be loaded.*save the model again"):
        load_model(directory)


def test_wrong_checksum_names_both_files_and_the_fix(fitted, tmp_path):
    directory = save_model(fitted, tmp_path / "model")
    path = directory / ESTIMATOR_FILE
    description = json.loads(path.read_text())
    description["fitted"]["model_sha256"] = "0" * 64
    path.write_text(json.dumps(description))
    with pytest.raises(ValueError, match=rf"{MODEL_FILE} does not match the checksum recorded "
                                         rf"in .*{ESTIMATOR_FILE}.*save the model again"):
        load_model(directory)


def test_an_extra_file_is_ignored(fitted, images, tmp_path):
    _, _, x_test = images
    directory = save_model(fitted, tmp_path / "model")
    (directory / "extra.pkl").write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")
    np.testing.assert_array_equal(load_model(directory).predict(x_test), fitted.predict(x_test))
