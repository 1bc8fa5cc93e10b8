"""CNNClassifier on real Fashion-MNIST images: scikit-learn integration, labels, shapes, seeds."""

import inspect
import logging
import pickle
import subprocess
import sys

import joblib
import keras
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scikeras.wrappers import KerasClassifier
from sklearn.base import clone, is_classifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import StackingClassifier, VotingClassifier
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    check_cv,
    cross_val_score,
)
from sklearn.pipeline import Pipeline
from sklearn.utils import get_tags

from skimgclf import CNNClassifier, _backend
from skimgclf import classifier as classifier_module
from skimgclf.classifier import validation_rows
from skimgclf.datasets import FASHION_MNIST_CLASSES

# Keras's model.save (also behind pickling) converts TensorFlow variables in a way NumPy 2
# deprecates; that is between those two libraries.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

# Small enough for a test, still well above chance (0.1) on 600 images.
TINY = {"filters": (8,), "dense_units": 16, "dense_dropout": 0.0, "learning_rate": 0.005,
        "epochs": 2, "random_state": 0}
NAMES = np.array(FASHION_MNIST_CLASSES)


@pytest.fixture(scope="module")
def fashion(fashion_sample):
    """600 training and 200 test images scaled to [0, 1], with their integer labels."""
    (x_train, y_train), (x_test, y_test) = fashion_sample
    return (x_train[:600] / np.float32(255), y_train[:600],
            x_test[:200] / np.float32(255), y_test[:200])


@pytest.fixture(scope="module")
def fitted(fashion):
    """A tiny network fitted on the class names of the 600 images."""
    x_train, y_train, _, _ = fashion
    return CNNClassifier(**TINY).fit(x_train, NAMES[y_train])


def test_scikit_learn_sees_a_classifier():
    clf = CNNClassifier()
    tags = get_tags(clf)
    assert is_classifier(clf)
    assert tags.estimator_type == "classifier"
    assert tags.classifier_tags is not None and not tags.input_tags.sparse
    assert isinstance(check_cv(3, np.arange(30) % 3, classifier=is_classifier(clf)),
                      StratifiedKFold)


def test_parameters_are_the_signature():
    clf = CNNClassifier(filters=(4, 8), epochs=3)
    names = [name for name in inspect.signature(CNNClassifier).parameters]
    assert sorted(clf.get_params()) == sorted(names)
    assert clf.get_params()["filters"] == (4, 8)
    clf.set_params(dropout=0.5)
    assert clone(clf).get_params() == clf.get_params()
    with pytest.raises(ValueError, match="Invalid parameter 'fit'"):
        clf.set_params(fit__batch_size=8)
    assert "fit__batch_size" not in vars(clf)
    # Keyword-only, as in scikit-learn: CNNClassifier((8,)) would read as anything.
    with pytest.raises(TypeError, match="positional"):
        CNNClassifier((8,))


def test_the_scikeras_internals_it_relies_on_are_there(fashion):
    # scikeras 0.13 is its last release; a new one renaming any of these must fail here, by
    # name, not deep inside a fit.
    missing = [name for name in classifier_module.SCIKERAS_METHODS
               if not hasattr(KerasClassifier, name)]
    assert not missing, f"scikeras's KerasClassifier no longer has {missing}"
    x_train, y_train, _, _ = fashion
    clf = CNNClassifier(**{**TINY, "epochs": 1})
    clf.classes_ = None  # as fit sets it before scikeras's _initialize
    KerasClassifier._initialize(clf, x_train[:20], y_train[:20])
    unset = [name for name in classifier_module.SCIKERAS_STATE if name not in vars(clf)]
    assert not unset, f"scikeras's KerasClassifier._initialize no longer sets {unset}"


@pytest.mark.parametrize(("params", "match"), [
    ({"dropout": 1.5}, "dropout"),
    ({"filters": "wide"}, "filters"),
    ({"lr_schedule": "step"}, "lr_schedule"),
    ({"device": "tpu"}, "device"),
    ({"input_shape": (5, 5)}, "input_shape"),
    ({"optimizer": "nosuch"}, "optimizer"),
])
def test_bad_parameters_are_named_at_fit(fashion, params, match):
    x_train, y_train, _, _ = fashion
    with pytest.raises(ValueError, match=match):
        CNNClassifier(**{**TINY, **params}).fit(x_train[:20], y_train[:20])


def test_learns_fashion_mnist_with_string_labels(fitted, fashion):
    _, _, x_test, y_test = fashion
    assert list(fitted.classes_) == sorted(FASHION_MNIST_CLASSES)
    assert fitted.n_features_in_ == 28 * 28 and fitted.image_shape_ == (28, 28, 1)
    assert set(fitted.history_) == {"loss", "accuracy"} and len(fitted.history_["loss"]) == 2
    predicted = fitted.predict(x_test)
    assert np.mean(predicted == NAMES[y_test]) > 0.5
    proba = fitted.predict_proba(x_test)
    assert proba.shape == (200, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(fitted.classes_[proba.argmax(axis=1)], predicted)


def test_pandas_categorical_labels(fashion):
    x_train, y_train, x_test, _ = fashion
    labels = pd.Series(pd.Categorical(NAMES[y_train[:100]]))
    clf = CNNClassifier(**{**TINY, "epochs": 1}).fit(x_train[:100], labels)
    assert set(clf.classes_) == set(labels.cat.categories)
    assert set(clf.predict(x_test[:20])) <= set(labels.cat.categories)


@pytest.mark.parametrize(("shape", "params", "image_shape"), [
    ((28, 28), {}, (28, 28, 1)),
    ((28, 28, 1), {}, (28, 28, 1)),
    ((784,), {}, (28, 28, 1)),
    ((784,), {"input_shape": (14, 56)}, (14, 56, 1)),
    ((28, 28, 3), {}, (28, 28, 3)),
    ((5,), {}, (1, 5, 1)),
    ((1, 1), {}, (1, 1, 1)),
])
def test_input_layouts(fashion, shape, params, image_shape):
    x_train, y_train, _, _ = fashion
    x = np.resize(x_train[:40], (40, *shape))
    clf = CNNClassifier(**{**TINY, "epochs": 1, **params}).fit(x, y_train[:40])
    assert clf.image_shape_ == image_shape
    assert clf.n_features_in_ == int(np.prod(shape))
    assert clf.predict(x[:3]).shape == (3,)
    # The same values per sample, flattened, are accepted too.
    assert clf.predict(x[:3].reshape(3, -1)).shape == (3,)


def test_input_errors_say_what_was_expected(fitted, fashion):
    _, _, x_test, _ = fashion
    with pytest.raises(ValueError, match=r"400 features.*expecting 784.*\(20, 20\)"):
        fitted.predict(x_test[:3, :20, :20])
    with pytest.raises(ValueError, match=r"shape \(28, 28, 1\)"):
        fitted.predict(np.zeros((3, 784, 1, 1)))
    with pytest.raises(ValueError, match="Reshape your data"):
        fitted.predict(x_test[0, 0])
    with pytest.raises(TypeError, match=r"sparse.*toarray"):
        fitted.predict(sp.csr_matrix(x_test[:3].reshape(3, -1)))
    with pytest.raises(NotFittedError):
        CNNClassifier().predict(x_test[:3])


def test_cross_validation_on_label_sorted_data(fashion):
    # scikeras's KerasClassifier is not a classifier to scikit-learn ≥ 1.6, so
    # cross_val_score used unstratified KFold: on sorted labels each fold met unseen classes.
    x_train, y_train, _, _ = fashion
    order = np.argsort(y_train, kind="stable")
    scores = cross_val_score(CNNClassifier(**TINY), x_train[order], y_train[order], cv=3)
    assert scores.min() > 0.4


def test_same_seed_same_predictions(fitted, fashion):
    x_train, y_train, x_test, _ = fashion
    again = clone(fitted).fit(x_train, NAMES[y_train])
    np.testing.assert_array_equal(again.predict_proba(x_test), fitted.predict_proba(x_test))
    other = clone(fitted).set_params(random_state=1).fit(x_train, NAMES[y_train])
    assert not np.array_equal(other.predict_proba(x_test), fitted.predict_proba(x_test))


def test_seeded_fit_leaves_global_random_state_alone(fashion):
    x_train, y_train, _, _ = fashion
    # The legacy global generator is the state under test.
    np.random.seed(7)  # noqa: NPY002
    expected = np.random.rand()  # noqa: NPY002
    np.random.seed(7)  # noqa: NPY002
    CNNClassifier(**{**TINY, "epochs": 1}).fit(x_train[:40], y_train[:40])
    assert np.random.rand() == expected  # noqa: NPY002
    # An unseeded fit after a seeded one works: TensorFlow's op determinism is not left on.
    CNNClassifier(**{**TINY, "epochs": 1, "random_state": None}).fit(x_train[:40], y_train[:40])


def test_pickle_and_joblib_round_trips(fitted, fashion, tmp_path):
    _, _, x_test, _ = fashion
    expected = fitted.predict_proba(x_test)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted)).predict_proba(x_test),
                                  expected)
    joblib.dump(fitted, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(x_test), expected)
    np.testing.assert_array_equal(loaded.classes_, fitted.classes_)


def test_clone_is_unfitted_with_the_same_parameters(fitted):
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "model_")


def test_sample_weight(fashion):
    x_train, y_train, x_test, _ = fashion
    x, y = x_train[:100], y_train[:100]
    plain = CNNClassifier(**TINY).fit(x, y)
    weights = np.ones(100)
    weighted = CNNClassifier(**{**TINY, "class_weight": {0: 1.0}}).fit(x, y, weights)
    np.testing.assert_allclose(weighted.predict_proba(x_test), plain.predict_proba(x_test),
                               rtol=1e-5)
    np.testing.assert_array_equal(weights, 1)  # the caller's array is not scaled in place
    # Weight only on shirts and sandals: the network learns those two.
    only_two = np.isin(y, [5, 6]).astype(float)
    skewed = CNNClassifier(**{**TINY, "epochs": 5, "learning_rate": 0.01})
    skewed.fit(x, y, sample_weight=only_two)
    assert set(skewed.predict(x_test)) <= {5, 6}
    with pytest.raises(ValueError, match="weight"):
        CNNClassifier(**TINY).fit(x, y, sample_weight=np.zeros(100))


def test_stratified_holdout_and_early_stopping_on_sorted_labels(fashion):
    x_train, y_train, _, _ = fashion
    order = np.argsort(y_train[:300], kind="stable")
    x, y = x_train[:300][order], y_train[:300][order]
    train, held_out = validation_rows(y, 0.3, random_state=0)
    # Every class in proportion, where Keras would hold out the last 30 %: classes 7-9 only.
    assert np.array_equal(np.bincount(y[held_out]), np.round(0.3 * np.bincount(y)))
    assert sorted([*train, *held_out]) == list(range(300))
    clf = CNNClassifier(**{**TINY, "epochs": 40, "validation_split": 0.3,
                           "early_stopping": True, "patience": 1, "learning_rate": 0.01})
    clf.fit(x, y)
    history = clf.history_
    assert len(history["loss"]) < 40
    assert max(history["val_accuracy"]) > 0.4
    # The curves are those of exactly these held-out rows, at the weights kept.
    best = int(np.argmin(history["val_loss"]))
    assert clf.score(x[held_out], y[held_out]) == pytest.approx(history["val_accuracy"][best])


def test_the_holdout_is_the_same_for_8_bit_and_unseeded_fits(fashion, pixels):
    mapped, y, _ = pixels
    _, held_out = validation_rows(y, 0.25)
    assert np.array_equal(held_out, validation_rows(y, 0.25, random_state=None)[1])
    clf = CNNClassifier(**{**TINY, "epochs": 1, "validation_split": 0.25, "random_state": None})
    clf.fit(mapped, y)
    # Unseeded, the holdout is still drawn with seed 0: the scores are of those rows.
    assert clf.score(mapped[held_out], y[held_out]) == pytest.approx(
        clf.history_["val_accuracy"][0])


@pytest.mark.parametrize(("y", "split", "match"), [
    (np.array([0] * 10 + [1]), 0.2, "least populated class"),
    (np.array([0] * 10 + [1] * 2), 0.9, r"train_size = 1 should be .*\. Add images"),
    (np.array([0] * 30 + [1] * 2 + [2] * 2), 0.85,
     r"no training image of class 1, 2; lower validation_split"),
])
def test_a_holdout_that_cannot_be_stratified_is_named(fashion, y, split, match):
    x_train, _, _, _ = fashion
    with pytest.raises(ValueError, match=match):
        CNNClassifier(**{**TINY, "validation_split": split}).fit(x_train[:len(y)], y)


def test_partial_fit_and_warm_start(fashion):
    x_train, y_train, _, _ = fashion
    few = np.isin(y_train, [0, 1, 2])
    clf = CNNClassifier(**TINY).partial_fit(x_train[few][:60], y_train[few][:60],
                                            classes=np.arange(10))
    clf.partial_fit(x_train[:60], y_train[:60])
    assert list(clf.classes_) == list(range(10)) and len(clf.history_["loss"]) == 2
    warm = CNNClassifier(**{**TINY, "epochs": 1, "warm_start": True}).fit(x_train[:60],
                                                                           y_train[:60])
    model = warm.model_
    warm.fit(x_train[60:120], y_train[60:120])
    assert warm.model_ is model and list(warm.classes_) == list(range(10))
    clf.partial_fit(x_train[:60], y_train[:60], epochs=3)
    assert len(clf.history_["loss"]) == 5
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        clf.partial_fit(x_train[:60], y_train[:60], epochs=0)


def test_from_network_wraps_a_network_trained_elsewhere(fitted, fashion, tmp_path):
    x_train, y_train, x_test, _ = fashion
    fitted.model_.save(tmp_path / "net.keras")
    network = keras.saving.load_model(tmp_path / "net.keras")
    clf = CNNClassifier.from_network(network, fitted.classes_, history=fitted.history_,
                                     **{**fitted.get_params(), "lr_schedule": "cosine"})
    np.testing.assert_array_equal(clf.predict_proba(x_test), fitted.predict_proba(x_test))
    assert (clf.image_shape_, clf.n_features_in_, clf.n_classes_) == ((28, 28, 1), 784, 10)
    # It trains on, its epochs numbered after those of the history.
    clf.partial_fit(x_train, NAMES[y_train])
    assert len(clf.history_["loss"]) == 3
    assert clf.history_["learning_rate"] == [pytest.approx(0.005)]
    with pytest.raises(ValueError, match="10 outputs for 9 classes"):
        CNNClassifier.from_network(fitted.model_, fitted.classes_[:9])
    flat = keras.Sequential([keras.Input((784,)), keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match=r"must take images .* it takes \(None, 784\)"):
        CNNClassifier.from_network(flat, [0, 1])


def test_cosine_schedule_and_batch_norm_blocks(fashion):
    x_train, y_train, _, _ = fashion
    clf = CNNClassifier(**{**TINY, "filters": ((4,), (4,)), "batch_norm": True,
                           "lr_schedule": "cosine"})
    clf.fit(x_train[:60], y_train[:60])
    # Half a cosine over the 2 epochs: the full rate, then half of it.
    assert clf.history_["learning_rate"] == pytest.approx([0.005, 0.0025])
    clf.partial_fit(x_train[:60], y_train[:60])
    assert clf.history_["learning_rate"][-1] == pytest.approx(0.005)  # a new half cosine
    kinds = [type(layer).__name__ for layer in clf.model_.layers]
    assert kinds.count("BatchNormalization") == 2 and kinds.count("MaxPooling2D") == 2


def test_one_cycle_schedule_rises_then_falls_step_by_step(fashion):
    x_train, y_train, _, _ = fashion
    rates = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    clf = CNNClassifier(**{**TINY, "lr_schedule": "one_cycle", "batch_size": 10},
                        callbacks=[Probe()])
    clf.fit(x_train[:60], y_train[:60])
    # 2 epochs of 6 steps: from a tenth of the peak up to it over 30 % of the steps (the peak
    # falls between steps 3 and 4), then down along half a cosine towards a thousandth of it.
    assert len(rates) == 12
    assert rates[0] == pytest.approx(0.0005)
    assert rates[:4] == sorted(rates[:4]) and rates[4:] == sorted(rates[4:], reverse=True)
    assert max(rates) == pytest.approx(0.005, rel=0.05)
    assert rates[-1] < 0.0002
    assert clf.history_["learning_rate"] == pytest.approx([rates[5], rates[11]])
    clf.partial_fit(x_train[:60], y_train[:60])
    assert rates[12] == pytest.approx(0.0005)  # a new cycle


def test_device_places_the_network(fitted, fashion):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the check reads TensorFlow's device names")
    import tensorflow as tf

    x_train, y_train, x_test, _ = fashion
    on_cpu = clone(fitted).set_params(device="cpu").fit(x_train, NAMES[y_train])
    devices = {variable.value.device for variable in on_cpu.model_.weights}
    assert devices and all(device.endswith("CPU:0") for device in devices), devices
    np.testing.assert_array_equal(on_cpu.predict_proba(x_test), fitted.predict_proba(x_test))
    n_gpus = len(tf.config.list_logical_devices("GPU"))
    # A GPU asked for that TensorFlow does not see is an error, not a silent run on the CPU.
    with pytest.raises(ValueError, match=rf"device='gpu:{n_gpus}', but TensorFlow sees"):
        clone(fitted).set_params(device=f"gpu:{n_gpus}").fit(x_train[:20], y_train[:20])
    if n_gpus:
        on_gpu = clone(fitted).set_params(device="gpu").fit(x_train, NAMES[y_train])
        assert all("GPU" in variable.value.device for variable in on_gpu.model_.weights)


def test_gpu_memory_growth_is_asked_for_every_visible_gpu(monkeypatch):
    # What this proves on a machine without a GPU: the calls made, with stand-ins for
    # TensorFlow's; the test below checks the real setting where there is a GPU.
    if keras.backend.backend() != "tensorflow":
        pytest.skip("memory growth is a TensorFlow setting")
    import tensorflow as tf

    grown = []

    def set_memory_growth(gpu, enable):
        grown.append((gpu, enable))
        if gpu == "gpu1":
            raise RuntimeError("Physical devices cannot be modified after being initialized")

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["gpu0", "gpu1"])
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", set_memory_growth)
    _backend._let_gpu_memory_grow()  # a runtime started before skimgclf keeps its settings
    assert grown == [("gpu0", True), ("gpu1", True)]


def test_gpu_memory_grows_on_a_real_gpu():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("memory growth is a TensorFlow setting")
    code = ("import tensorflow as tf, skimgclf._backend\n"
            "gpus = tf.config.list_physical_devices('GPU')\n"
            "print(len(gpus), all(tf.config.experimental.get_memory_growth(g) for g in gpus))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    n_gpus, grows = done.stdout.split()
    if n_gpus == "0":
        pytest.skip("no GPU here: the call is checked with stand-ins above")
    assert grows == "True"


def test_threads_are_tensorflows_choice_or_the_users(fitted):
    # TensorFlow's own thread counts trained fastest here (benchmarks/bench_training.py), so
    # fitting sets none; a user's settings, made before TensorFlow starts, must survive a fit.
    if keras.backend.backend() != "tensorflow":
        pytest.skip("thread settings are TensorFlow's")
    import tensorflow as tf

    assert (tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads()) == (0, 0)
    code = (
        "import numpy as np, tensorflow as tf\n"
        "tf.config.threading.set_intra_op_parallelism_threads(1)\n"
        "tf.config.threading.set_inter_op_parallelism_threads(1)\n"
        "from skimgclf import CNNClassifier\n"
        "x = np.random.default_rng(0).random((40, 8, 8), dtype=np.float32)\n"
        "CNNClassifier(filters=(2,), dense_units=4, epochs=1).fit(x, np.arange(40) % 2)\n"
        "print(tf.config.threading.get_intra_op_parallelism_threads(),\n"
        "      tf.config.threading.get_inter_op_parallelism_threads())\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["1", "1"]


def test_soft_voting(fashion):
    x_train, y_train, x_test, y_test = fashion
    vote = VotingClassifier([("a", CNNClassifier(**TINY)),
                             ("b", CNNClassifier(**{**TINY, "random_state": 1}))],
                            voting="soft")
    vote.fit(x_train[:300], NAMES[y_train[:300]])
    proba = vote.predict_proba(x_test)
    assert proba.shape == (200, 10)
    assert np.mean(vote.predict(x_test) == NAMES[y_test]) > 0.5
    # Fitting the second network did not break the first one.
    assert vote.estimators_[0].predict(x_test[:5]).shape == (5,)


@pytest.mark.slow
def test_stacking_and_calibration_accept_it(fashion):
    x_train, y_train, x_test, _ = fashion
    stack = StackingClassifier([("cnn", CNNClassifier(**TINY))],
                               final_estimator=LogisticRegression(), cv=2)
    assert stack.fit(x_train[:300], y_train[:300]).predict_proba(x_test).shape == (200, 10)
    calibrated = CalibratedClassifierCV(CNNClassifier(**TINY), cv=2)
    assert calibrated.fit(x_train[:300], y_train[:300]).predict_proba(x_test).shape == (200, 10)


def _loader_pipeline(layout):
    from skimgclf import ImageFolderLoader

    return Pipeline([("load", ImageFolderLoader(layout.train_dir, suffix=".png")),
                     ("cnn", CNNClassifier(**TINY))])


def test_pipeline_of_loader_and_classifier_on_file_names(small_layout):
    layout, _, _, x_test, _ = small_layout
    train = pd.read_csv(layout.train_csv)
    test = pd.read_csv(layout.test_csv)
    pipe = _loader_pipeline(layout).fit(train[["id"]], NAMES[train["label"]])
    # Same images through the loader or as arrays: same predictions.
    pipe.set_params(load__image_dir=layout.test_dir)
    predicted = pipe.predict(test[["id"]])
    np.testing.assert_array_equal(predicted, pipe[-1].predict(x_test / np.float32(255)))
    assert set(predicted) <= set(FASHION_MNIST_CLASSES)


def test_grid_search_sets_filters_dropout_and_epochs(small_layout):
    layout, *_ = small_layout
    train = pd.read_csv(layout.train_csv).iloc[:120]
    # Two candidates that differ in all three parameters keep this quick; the full grid is
    # the slow test below.
    grid = [{"cnn__filters": [(4,)], "cnn__dropout": [0.25], "cnn__epochs": [1]},
            {"cnn__filters": [(4, 8)], "cnn__dropout": [0.5], "cnn__epochs": [2]}]
    search = GridSearchCV(_loader_pipeline(layout), grid, cv=2).fit(train[["id"]],
                                                                    train["label"])
    best = search.best_estimator_["cnn"]
    assert {k: best.get_params()[k] for k in ("filters", "dropout", "epochs")} in [
        {"filters": (4,), "dropout": 0.25, "epochs": 1},
        {"filters": (4, 8), "dropout": 0.5, "epochs": 2}]
    assert len(best.history_["loss"]) == best.epochs
    assert len(best.model_.layers) == 6 + len(best.filters)  # input, convs, pool ... softmax


@pytest.mark.slow
def test_full_grid_search_in_parallel_workers(small_layout):
    layout, *_ = small_layout
    train = pd.read_csv(layout.train_csv)
    grid = {"cnn__filters": [(8,), (8, 16)], "cnn__dropout": [0.25, 0.5],
            "cnn__epochs": [1, 2]}
    search = GridSearchCV(_loader_pipeline(layout), grid, cv=2, n_jobs=2)
    search.fit(train[["id"]], train["label"])
    assert len(search.cv_results_["params"]) == 8
    assert search.best_score_ > 0.3


def _rss_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


@pytest.mark.slow
def test_a_dozen_fits_keep_memory_flat_and_logs_quiet(fashion, caplog):
    x_train, y_train, x_test, _ = fashion
    rss = []
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        for seed in range(12):
            CNNClassifier(**{**TINY, "random_state": seed}).fit(
                x_train[:200], y_train[:200]).predict(x_test)
            rss.append(_rss_mib())
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
    # The first fits warm up TensorFlow's caches. TensorFlow 2.21 still keeps a few MB of
    # graphs per trained network (plain Keras code does too); this guards against more.
    assert (rss[-1] - rss[4]) / 7 < 6, rss


# --- 8-bit images, read a batch at a time ---------------------------------------------------


@pytest.fixture(scope="module")
def pixels(fashion_sample, tmp_path_factory):
    """The 600 training images of ``fashion`` as a uint8 memory map, with their labels."""
    (x_train, y_train), (x_test, _) = fashion_sample
    path = tmp_path_factory.mktemp("pixels") / "x.uint8"
    mapped = np.memmap(path, np.uint8, "w+", shape=(600, 28, 28, 1))
    mapped[:] = x_train[:600, ..., None]
    mapped.flush()
    return np.memmap(path, np.uint8, "r", shape=(600, 28, 28, 1)), y_train[:600], x_test[:200]


def test_uint8_images_are_scaled_like_the_loaders_float_ones(fitted, pixels, fashion):
    mapped, _, x_test = pixels
    # A network fitted on float [0, 1] input predicts 0-255 input identically.
    np.testing.assert_array_equal(fitted.predict_proba(x_test),
                                  fitted.predict_proba(x_test / np.float32(255)))
    np.testing.assert_array_equal(fitted.predict(x_test), fitted.predict(fashion[2]))


def test_uint8_memory_map_trains_batch_by_batch(pixels, fashion, monkeypatch):
    mapped, y, x_test = pixels
    _, _, _, y_test = fashion
    # Nothing may turn the whole map into floats: only batches of batch_size rows.
    converted = []
    real_getitem = classifier_module.PixelBatches.__getitem__

    def counting_getitem(self, index):
        batch = real_getitem(self, index)
        converted.append(len(batch[0]))
        return batch

    monkeypatch.setattr(classifier_module.PixelBatches, "__getitem__", counting_getitem)
    clf = CNNClassifier(**{**TINY, "batch_size": 50, "validation_split": 0.2}).fit(mapped, y)
    assert max(converted) == 50
    assert set(clf.history_) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert clf.score(x_test, y_test) > 0.5
    # The same seed gives the same network, whatever holds the pixels.
    again = CNNClassifier(**{**TINY, "batch_size": 50, "validation_split": 0.2})
    np.testing.assert_array_equal(again.fit(np.array(mapped), y).predict_proba(x_test),
                                  clf.predict_proba(x_test))


# Wrong data: each case is a clear error or a behaviour stated here (docs/reliability.md).


def test_one_class_is_refused_unless_partial_fit_is_told_the_others(fashion):
    x_train, _, _, _ = fashion
    one = np.full(40, "Coat")
    with pytest.raises(ValueError, match=r"only one class \('Coat'\).*at least two"):
        CNNClassifier(**TINY).fit(x_train[:40], one)
    # A first batch of one class is fine when partial_fit knows every class.
    clf = CNNClassifier(**TINY).partial_fit(x_train[:40], one, classes=["Coat", "Bag"])
    assert sorted(clf.classes_) == ["Bag", "Coat"]


@pytest.mark.parametrize(("y", "match"), [
    (np.zeros(39, int), r"inconsistent numbers of samples: \[40, 39\]"),
    (np.where(np.arange(40) == 3, np.nan, np.arange(40) % 2), "y contains NaN"),
    (np.array([None] + [0, 1] * 19 + [1], dtype=object), "Unknown label type"),
    (np.arange(40) % 2 + 0.5, "Unknown label type: continuous"),
])
def test_labels_that_cannot_train_are_named(fashion, y, match):
    x_train, _, _, _ = fashion
    with pytest.raises(ValueError, match=match):
        CNNClassifier(**TINY).fit(x_train[:40], y)


def test_classes_never_seen_in_fit_count_as_errors_in_score(fashion):
    x_train, y_train, x_test, y_test = fashion
    seen = y_train < 5
    clf = CNNClassifier(**TINY).fit(x_train[seen], y_train[seen])
    predicted = clf.predict(x_test)
    assert set(predicted) <= set(range(5))  # a class it never saw is never predicted
    assert clf.score(x_test, y_test) == pytest.approx(np.mean(predicted == y_test))
    assert clf.score(x_test[y_test >= 5], y_test[y_test >= 5]) == 0
