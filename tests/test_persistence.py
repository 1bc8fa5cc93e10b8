"""Model folders: Keras's native file plus JSON, atomic writes, clear errors on damage."""

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from skimgclf import CNNClassifier, ImageFolderLoader
from skimgclf._folders import MANIFEST, describe
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
    assert sorted(p.name for p in directory.iterdir()) == [ESTIMATOR_FILE, MODEL_FILE, MANIFEST]
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
    assert description["format_version"] == 2
    assert description["estimator"]["class"] == "CNNClassifier"
    assert description["estimator"]["params"]["filters"] == {"__tuple__": [8]}
    assert description["fitted"]["classes"] == {"values": list(range(10)),
                                                "dtype": fitted.classes_.dtype.str}


def test_saving_replaces_a_model_whole_and_leaves_nothing_behind(fitted, images, tmp_path):
    x_train, y_train, x_test = images
    directory = save_model(fitted, tmp_path / "model")
    other = CNNClassifier(**{**TINY, "random_state": 1}).fit(x_train, y_train)
    save_model(other, directory)
    assert _siblings(directory) == ["model"]
    np.testing.assert_array_equal(load_model(directory).predict_proba(x_test),
                                  other.predict_proba(x_test))


@pytest.mark.parametrize("name", ["notes.txt", "checkpoint"])
def test_a_folder_of_other_files_is_refused_untouched(fitted, tmp_path, name):
    (tmp_path / name).write_text("mine")
    with pytest.raises(FileExistsError, match=rf"did not write .*'{name}'"):
        save_model(fitted, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_a_model_folder_holding_a_users_file_is_not_replaced(fitted, tmp_path):
    directory = save_model(fitted, tmp_path / "model")
    (directory / "notes.txt").write_text("what I tried")
    with pytest.raises(FileExistsError, match="does not list: 'notes.txt'"):
        save_model(fitted, directory)
    assert (directory / "notes.txt").read_text() == "what I tried"


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


def test_swapped_class_names_are_refused(fitted_pipeline, tmp_path):
    # Two names swapped in the description would swap the predictions without a word.
    directory = save_model(fitted_pipeline, tmp_path / "model")
    path = directory / ESTIMATOR_FILE
    description = json.loads(path.read_text())
    classes = description["fitted"]["classes"]["values"]
    classes[0], classes[1] = classes[1], classes[0]
    path.write_text(json.dumps(description, indent=2) + "\n")
    with pytest.raises(ValueError, match=rf"{ESTIMATOR_FILE} does not match the checksum "
                                         rf"recorded in .*{MANIFEST}"):
        load_model(directory)


@pytest.mark.parametrize(("edit", "match"), [
    (lambda text: text[:-20], "damaged"),
    (lambda text: text.replace('"CNNClassifier"', '"os.system"'), "unknown estimator class"),
    (lambda text: text.replace('"format_version": 2', '"format_version": 99'),
     "reads version 2"),
    (lambda text: text.replace('"format_version": 2', '"format_version": 1'),
     "use the skimgclf that wrote it"),
    (lambda text: text.replace('"values": [\n', '"values": [\n        10,\n'),
     "does not describe"),
])
def test_changed_description_is_refused(fitted, tmp_path, edit, match):
    # With its checksum rewritten, as whoever can edit the folder can do: the description is
    # still read with care.
    directory = save_model(fitted, tmp_path / "model")
    path = directory / ESTIMATOR_FILE
    path.write_text(edit(path.read_text()))
    describe(directory, "model")
    with pytest.raises(ValueError, match=match) as error:
        load_model(directory)
    assert ESTIMATOR_FILE in str(error.value)


def test_a_model_folder_never_chooses_where_files_are_written(fitted_pipeline, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    pipe = fitted_pipeline.set_params(load__cache=str(tmp_path / "cache"))
    directory = save_model(pipe, tmp_path / "model")
    pipe.set_params(load__cache=None)
    assert load_model(directory)["load"].cache is None  # the cache is not saved
    path = directory / ESTIMATOR_FILE
    path.write_text(path.read_text().replace('"cache": null', f'"cache": "{elsewhere}"'))
    describe(directory, "model")
    with pytest.raises(ValueError, match="names the cache folder .*does not choose where"):
        load_model(directory)
    assert not elsewhere.exists()


def test_a_keras_with_known_safe_mode_bypasses_is_refused(fitted, tmp_path, monkeypatch):
    directory = save_model(fitted, tmp_path / "model")
    monkeypatch.setattr(keras, "__version__", "3.8.0")
    with pytest.raises(RuntimeError, match=r"Keras 3.8.0 is installed.*keras>=3.14.0"):
        load_model(directory)


def test_a_folder_of_skimgclf_0_1_is_refused_with_the_fix(fitted, tmp_path):
    directory = save_model(fitted, tmp_path / "model")
    (directory / MANIFEST).unlink()
    with pytest.raises(FileNotFoundError, match=rf"has no {MANIFEST}, so it is not a model "
                                                "folder written by skimgclf's save_model"):
        load_model(directory)


def test_accepts_str_and_path(fitted, tmp_path):
    save_model(fitted, str(tmp_path / "a"))
    assert isinstance(load_model(str(tmp_path / "a")), CNNClassifier)
    assert isinstance(load_model(Path(tmp_path / "a")), CNNClassifier)


# Tampered model folders: whoever can write the folder can also fix up the checksum, so Keras's
# safe mode is what must stop code from running.


def _rewrite_network(directory, model):
    """Replace the folder's network by ``model``, recording its checksum as save_model does."""
    model.save(directory / MODEL_FILE)
    describe(directory, "model")


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


def test_damaged_network_with_a_matching_checksum_is_named(fitted, tmp_path):
    directory = save_model(fitted, tmp_path / "model")
    content = bytearray((directory / MODEL_FILE).read_bytes())
    content[len(content) // 2:len(content) // 2 + 64] = bytes(64)
    (directory / MODEL_FILE).write_bytes(bytes(content))
    describe(directory, "model")
    with pytest.raises(ValueError, match=f"{MODEL_FILE} cannot be loaded.*save the model again"):
        load_model(directory)


def test_wrong_checksum_names_both_files(fitted, tmp_path):
    directory = save_model(fitted, tmp_path / "model")
    path = directory / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["entries"][MODEL_FILE]["sha256"] = "0" * 64
    path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=rf"{MODEL_FILE} does not match the checksum recorded "
                                         rf"in .*{MANIFEST}: it was changed or damaged"):
        load_model(directory)


def test_an_extra_file_is_ignored(fitted, images, tmp_path):
    _, _, x_test = images
    directory = save_model(fitted, tmp_path / "model")
    (directory / "extra.pkl").write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")
    np.testing.assert_array_equal(load_model(directory).predict(x_test), fitted.predict(x_test))
