"""ImageEmbedder: a backbone as a transformer, its inputs, its cache, and scikit-learn's checks.

The ImageNet weights are never downloaded here: the networks have random weights, seeded, or
those of a weights file saved by the tests.
"""

import logging

import joblib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_param_validation, parametrize_with_checks

from skimgclf import ImageEmbedder
from skimgclf._backbones import backbone_of
from skimgclf._backend import keras
from skimgclf._batches import scaled

# Keras saves each variable (save_weights, pickling) through np.array(tensor), whose copy
# protocol NumPy 2 deprecates: one warning per variable, nothing of skimgclf's.
# Dozens of networks, each run on a few batches: tracing them into graphs would take longer.
pytestmark = [pytest.mark.usefixtures("eager_keras"), pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")]

SIZE = 32  # the smallest image the backbones take
WIDTH = 576  # mobilenet_v3_small's features


def embedding_counts(caplog):
    """``(n_computed, n_from_cache)`` summed over the embedder's records so far."""
    records = [record for record in caplog.records if record.name == "skimgclf.embedder"]
    return (sum(record.n_computed for record in records),
            sum(record.n_from_cache for record in records))


@pytest.fixture(scope="module")
def pixels():
    """24 colour images of 32×32 8-bit pixels."""
    return np.random.default_rng(0).integers(0, 256, (24, SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def weights_file(pixels, tmp_path_factory):
    """The weights of a mobilenet_v3_small backbone without its top, drawn with seed 1."""
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v3_small.weights.h5"
    network = ImageEmbedder(weights=None, random_state=1).fit(pixels).model_
    backbone_of(network).save_weights(path)
    return path


@pytest.fixture(scope="module")
def embedder(pixels, weights_file):
    """An embedder of the weights file, fitted on ``pixels``."""
    return ImageEmbedder(weights=weights_file).fit(scaled(pixels))


def test_transform_gives_float32_features_per_image(embedder, pixels):
    images = scaled(pixels)
    state = dict(vars(embedder))
    features = embedder.transform(images)
    # Transforming changes nothing; fitting added only attributes ending in "_".
    assert vars(embedder).keys() == state.keys()
    assert all(value is state[name] for name, value in vars(embedder).items())
    assert all(name.endswith("_") or name.startswith("_") for name in state
               if name not in embedder.get_params())
    assert features.shape == (len(images), WIDTH) and features.dtype == np.float32
    assert embedder.transform(images.astype(np.float64)).dtype == np.float32
    assert (embedder.n_features_in_, embedder.image_shape_) == (SIZE * SIZE * 3, (SIZE, SIZE, 3))
    assert embedder.n_features_out_ == WIDTH
    names = embedder.get_feature_names_out()
    assert names.tolist() == [f"imageembedder{i}" for i in range(WIDTH)]
    assert np.isfinite(features).all() and features.std() > 0


def test_embeddings_are_deterministic(embedder, pixels):
    images = scaled(pixels)
    features = embedder.transform(images)
    assert_array_equal(embedder.transform(images), features)
    assert_array_equal(clone(embedder).fit_transform(images), features)
    assert_array_equal(embedder.transform(np.asfortranarray(images)), features)
    # Each image's features do not depend on the others of its batch, nor on their order.
    assert_allclose(embedder.transform(images[::-1]), features[::-1], rtol=1e-6)
    assert_allclose(clone(embedder).set_params(batch_size=5).fit(images).transform(images[7:9]),
                    features[7:9], rtol=1e-6)


def test_seeded_random_weights_are_the_same_at_every_fit(pixels):
    images = scaled(pixels[:4])
    first = ImageEmbedder(weights=None, random_state=0).fit(images).transform(images)
    again = ImageEmbedder(weights=None, random_state=0).fit(images).transform(images)
    assert_array_equal(first, again)


def test_float_uint8_and_memmap_pixels_embed_alike(embedder, pixels, tmp_path, monkeypatch):
    expected = embedder.transform(scaled(pixels))
    assert_allclose(embedder.transform(pixels), expected, rtol=1e-6)
    path = tmp_path / "pixels.u8"
    pixels.tofile(path)
    mapped = np.memmap(path, np.uint8, "r", shape=pixels.shape)
    # 8-bit images are scaled a batch at a time, never all at once.
    batches = []

    def spy(block):
        batches.append(len(block))
        return scaled(block)

    monkeypatch.setattr("skimgclf.embedder.scaled", spy)
    assert_allclose(clone(embedder).set_params(batch_size=10).fit(mapped).transform(mapped),
                    expected, rtol=1e-6)
    assert batches == [10, 10, 4]


def test_grey_images_are_repeated_to_three_channels(embedder, pixels, weights_file):
    grey = pixels[..., 0]
    colour = np.repeat(grey[..., np.newaxis], 3, axis=-1)
    grey_embedder = ImageEmbedder(weights=weights_file).fit(grey)
    assert grey_embedder.image_shape_ == (SIZE, SIZE, 1)
    expected = embedder.transform(colour)
    assert_allclose(grey_embedder.transform(grey), expected, rtol=1e-6)
    assert_allclose(grey_embedder.transform(grey[..., np.newaxis]), expected, rtol=1e-6)
    # Rows of s*s pixels are s×s grey images, as CNNClassifier reads them; input_shape says
    # how to read other rows.
    rows = ImageEmbedder(weights=weights_file).fit(grey.reshape(len(grey), -1))
    assert_allclose(rows.transform(grey.reshape(len(grey), -1)), expected, rtol=1e-6)
    rows = ImageEmbedder(weights=weights_file, input_shape=(SIZE, SIZE, 3))
    rows.fit(colour.reshape(len(colour), -1))
    assert_allclose(rows.transform(colour.reshape(len(colour), -1)), expected, rtol=1e-6)


def brightness_set(n, seed):
    """Images whose class is whether they are dark or light, under noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    noise = rng.uniform(-0.25, 0.25, (n, SIZE, SIZE, 3))
    return (0.3 + 0.4 * y[:, None, None, None] + noise).astype(np.float32), y


def test_a_linear_model_learns_from_the_features(weights_file):
    X_train, y_train = brightness_set(40, seed=0)
    X_test, y_test = brightness_set(20, seed=1)
    pipe = Pipeline([("embed", ImageEmbedder(weights=weights_file)),
                     ("scale", StandardScaler()),
                     ("clf", LogisticRegression(max_iter=1000))])
    assert pipe.fit(X_train, y_train).score(X_test, y_test) >= 0.8


def test_grid_search_embeds_each_image_once(pixels, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="skimgclf.embedder")
    # Two images twice: 26 rows, 24 distinct images.
    X = np.concatenate([pixels, pixels[:2]])
    y = np.arange(len(X)) % 2
    pipe = Pipeline([("embed", ImageEmbedder(weights=None, random_state=0, cache=tmp_path)),
                     ("scale", StandardScaler()),
                     ("clf", LogisticRegression())])
    GridSearchCV(pipe, {"clf__C": [0.1, 1.0]}, cv=2).fit(X, y)
    n_computed, n_from_cache = embedding_counts(caplog)
    assert n_computed == len(pixels)
    assert n_from_cache > n_computed
    # Later runs read every embedding.
    caplog.clear()
    clone(pipe.named_steps["embed"]).fit_transform(X)
    assert embedding_counts(caplog) == (0, len(pixels))


def test_the_cache_returns_what_would_be_computed(embedder, pixels, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="skimgclf.embedder")
    cached = clone(embedder).set_params(cache=tmp_path).fit(pixels)
    first = cached.transform(pixels[:10])
    assert_allclose(first, embedder.transform(pixels[:10]), rtol=1e-6)
    caplog.clear()
    expected = cached.transform(pixels)
    assert embedding_counts(caplog) == (len(pixels) - 10, 10)
    assert_array_equal(expected[:10], first)
    # An entry cut short, as by a crash before its data reached the disk, is absent.
    entry = sorted(tmp_path.glob("*.embedding"))[0]
    entry.write_bytes(entry.read_bytes()[:-4])
    caplog.clear()
    assert_array_equal(cached.transform(pixels), expected)
    assert embedding_counts(caplog) == (1, len(pixels) - 1)
    # Other weights, other entries.
    caplog.clear()
    ImageEmbedder(weights=None, random_state=0, cache=tmp_path).fit(pixels).transform(pixels)
    assert embedding_counts(caplog) == (len(pixels), 0)
    # Other pixels of the same picture, other entries.
    caplog.clear()
    assert_allclose(cached.transform(scaled(pixels[:3])), expected[:3], rtol=1e-6)
    assert embedding_counts(caplog) == (3, 0)


def test_cache_refuses_unseeded_random_weights(pixels, tmp_path):
    with pytest.raises(ValueError, match="set random_state to an int"):
        ImageEmbedder(weights=None, cache=tmp_path).fit(pixels)


def test_weights_file_is_loaded(embedder, pixels, weights_file):
    images = scaled(pixels[:6])
    features = embedder.transform(images)
    random = ImageEmbedder(weights=None, random_state=0).fit(images).transform(images)
    # The features are small (about 1e-10) with random weights: compared relatively.
    assert not np.allclose(features, random, rtol=1e-2, atol=0)
    # The same as Keras computes with the file: pixels scaled to 0-255, then average pooling.
    backbone = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(SIZE, SIZE, 3), include_preprocessing=True)
    backbone.load_weights(weights_file)
    direct = backbone.predict(images * 255, verbose=0).mean(axis=(1, 2))
    assert_allclose(features, direct, atol=1e-5 * np.abs(direct).max())


@pytest.mark.parametrize("params, X, error, match", [
    ({}, np.zeros((2, 16, 16, 3), np.uint8), ValueError, r"at least 32×32 pixels.*16×16"),
    ({}, np.zeros((2, SIZE, SIZE, 4), np.uint8), ValueError, r"1 or 3 channels\), not 4"),
    ({}, np.full((2, SIZE, SIZE), np.nan), ValueError, "NaN"),
    ({"backbone": "resnet18"}, None, ValueError, "'backbone' parameter.*mobilenet_v3_small"),
    ({"weights": "no-such.weights.h5"}, None, FileNotFoundError, "no-such.weights.h5"),
    ({"device": "tpu"}, None, ValueError, "device must be None, 'cpu', 'gpu'"),
])
def test_errors_name_the_fix(params, X, error, match, pixels):
    params = {"weights": None, **params}
    with pytest.raises(error, match=match):
        ImageEmbedder(**params).fit(pixels if X is None else X)


def test_a_file_that_is_no_weights_is_refused(pixels, tmp_path):
    path = tmp_path / "notes.weights.h5"
    path.write_text("not weights")
    with pytest.raises(ValueError, match="cannot be loaded into mobilenet_v3_small"):
        ImageEmbedder(weights=path).fit(pixels)


def test_images_of_another_shape_are_refused(embedder):
    with pytest.raises(ValueError, match=r"shape \(48, 48, 3\).*\(32, 32, 3\)"):
        embedder.transform(np.zeros((2, 48, 48, 3), np.float32))
    with pytest.raises(ValueError, match="takes images as an array"):
        embedder.transform(np.zeros(SIZE * SIZE * 3, np.float32))
    with pytest.raises(NotFittedError):
        ImageEmbedder().transform(np.zeros((2, SIZE, SIZE, 3), np.float32))


def test_clone_is_unfitted_and_a_fitted_embedder_pickles(embedder, pixels, weights_file,
                                                         tmp_path):
    copy = clone(embedder)
    assert copy.get_params() == embedder.get_params() and not hasattr(copy, "model_")
    path = tmp_path / "embedder.joblib"
    joblib.dump(embedder, path)
    # The network travels whole: its weights file is not read again.
    moved = tmp_path / "moved.weights.h5"
    weights_file.rename(moved)
    try:
        loaded = joblib.load(path)
    finally:
        moved.rename(weights_file)
    assert_array_equal(loaded.transform(pixels), embedder.transform(pixels))
    assert loaded.n_features_out_ == WIDTH
    assert loaded.get_params() == embedder.get_params()


# scikit-learn's checks fit on tables of a few features (20 at most), which are no images: the
# smallest a backbone takes is 32×32 pixels, and a fixed feature extractor cannot learn another
# size. Where a check applies to images, a test above checks the same on them.
TOY_DATA = "fits on a table of a few features, no image of at least 32×32 pixels"


def _on_images(test):
    return f"{TOY_DATA}; {test} checks the same on images"


EXPECTED_FAILED_CHECKS = {
    "check_fit_score_takes_y": _on_images("test_a_linear_model_learns_from_the_features"),
    "check_estimators_overwrite_params":
        _on_images("test_clone_is_unfitted_and_a_fitted_embedder_pickles"),
    "check_dont_overwrite_parameters":
        _on_images("test_transform_gives_float32_features_per_image"),
    "check_estimators_fit_returns_self": _on_images("test_embeddings_are_deterministic"),
    "check_readonly_memmap_input":
        _on_images("test_float_uint8_and_memmap_pixels_embed_alike"),
    "check_n_features_in_after_fitting": _on_images("test_images_of_another_shape_are_refused"),
    "check_positive_only_tag_during_fit": TOY_DATA,
    "check_estimators_dtypes": _on_images("test_float_uint8_and_memmap_pixels_embed_alike"),
    "check_dtype_object": TOY_DATA,
    "check_pipeline_consistency": _on_images("test_a_linear_model_learns_from_the_features"),
    "check_estimators_nan_inf": _on_images("test_errors_name_the_fix"),
    "check_estimators_pickle":
        _on_images("test_clone_is_unfitted_and_a_fitted_embedder_pickles"),
    "check_f_contiguous_array_estimator": _on_images("test_embeddings_are_deterministic"),
    "check_transformer_data_not_an_array": TOY_DATA,
    "check_transformer_general": _on_images("test_embeddings_are_deterministic"),
    "check_transformer_preserve_dtypes":
        _on_images("test_transform_gives_float32_features_per_image"),
    "check_methods_sample_order_invariance": _on_images("test_embeddings_are_deterministic"),
    "check_methods_subset_invariance": _on_images("test_embeddings_are_deterministic"),
    "check_fit2d_1sample": _on_images("test_one_image_is_enough"),
    "check_fit2d_1feature": TOY_DATA,
    "check_dict_unchanged": _on_images("test_transform_gives_float32_features_per_image"),
    "check_fit_idempotent": _on_images("test_seeded_random_weights_are_the_same_at_every_fit"),
    "check_fit_check_is_fitted": _on_images("test_images_of_another_shape_are_refused"),
    "check_n_features_in": _on_images("test_transform_gives_float32_features_per_image"),
    "check_fit2d_predict1d": _on_images("test_images_of_another_shape_are_refused"),
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS


@parametrize_with_checks([ImageEmbedder(weights=None, random_state=0)],
                         expected_failed_checks=_expected_failed_checks)
def test_sklearn_conformance(estimator, check):
    check(estimator)


def test_parameter_validation():
    # Not among parametrize_with_checks's checks: each parameter set to a value of a wrong
    # kind must be refused by fit, in scikit-learn's words.
    check_param_validation("ImageEmbedder", ImageEmbedder(weights=None, random_state=0))


def test_one_image_is_enough(weights_file, pixels):
    # What check_fit2d_1sample would check on images: nothing is learned, so one will do.
    single = ImageEmbedder(weights=weights_file).fit(pixels[:1])
    assert single.transform(pixels[:1]).shape == (1, WIDTH)
