"""CNNClassifier with a pretrained backbone: building, weights, fine-tuning, augmentation, TTA,
export."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from skimgclf import CNNClassifier
from skimgclf._backbones import BACKBONES, backbone_of
from skimgclf._backend import keras
from skimgclf.persistence import load_model, save_model

# What skimgclf does around Keras, on a few dozen images; the command line's backbone test
# (tests/test_cli.py) trains one in graph mode, as a user's run does.
pytestmark = [pytest.mark.usefixtures("eager_keras"), pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning",
    # Keras notes, when loading, that a freshly built optimizer has no state to restore.
    "ignore:Skipping variable loading for optimizer:UserWarning",
    "ignore:.*input_shape.*is undefined or non-square:UserWarning")]

# float32 on every machine, so that the exact comparisons below hold where precision="auto"
# would pick 16 bits (tests/test_precision.py tests those).
SMALL = {"backbone": "mobilenet_v3_small", "dense_units": 0, "batch_size": 32,
         "precision": "float32", "random_state": 0}


@pytest.fixture(scope="module")
def photos(fashion_sample):
    """90 colour 32×32 images of three classes: a class is a tint and an item, a learnable pair."""
    (x_train, y_train), _ = fashion_sample
    rng = np.random.default_rng(0)
    rows = np.concatenate([np.flatnonzero(y_train == label)[:30] for label in (0, 1, 7)])
    items = np.pad(x_train[rows], ((0, 0), (2, 2), (2, 2)))[..., None] / 255
    y = np.repeat([0, 1, 2], 30)
    tints = np.array([[1.0, 0.3, 0.3], [0.3, 1.0, 0.3], [0.3, 0.3, 1.0]])[y]
    background = rng.uniform(0, 0.4, (90, 32, 32, 3))
    x = np.clip(background + items * tints[:, None, None, :], 0, 1)
    order = rng.permutation(90)
    return (x[order] * 255).round().astype(np.uint8), y[order]


@pytest.fixture(scope="module")
def scratch(photos):
    """mobilenet_v3_small trained for two epochs from random weights."""
    x, y = photos
    return CNNClassifier(**SMALL, weights=None, epochs=2).fit(x, y)


@pytest.fixture(scope="module")
def pretrained(scratch, photos, tmp_path_factory):
    """A weights file of mobilenet_v3_small without its top, as Keras downloads one.

    The backbone of ``scratch``, whose batch normalisation statistics are then measured on a
    batch of images, as long training would have settled them.
    """
    x, _ = photos
    backbone = backbone_of(scratch.model_)
    norms = [layer for layer in backbone.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    backbone(keras.layers.Rescaling(255.0)(x.astype("float32") / 255), training=True)
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v3_small_no_top.weights.h5"
    backbone.save_weights(path)
    return path


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_builds_and_loads_in_safe_mode(name, photos, tmp_path):
    from skimgclf._network import build_network

    x, _ = photos
    grey = x[:4].mean(axis=-1, keepdims=True).astype(np.uint8)
    network = build_network((32, 32, 1), 3, backbone=name, weights=None, filters=(), kernel_size=3,
                            pool_size=2, dropout=0.0, dense_units=0, dense_dropout=0.0,
                            batch_norm=False, optimizer="adam", learning_rate=0.001)
    # Saved without the optimizer's slots: ResNet50V2's and ConvNeXt's would triple the file.
    network.optimizer = None
    clf = CNNClassifier.from_network(network, ["a", "b", "c"], backbone=name, weights=None)
    layers = [layer.name for layer in clf.model_.layers]
    assert "grey_to_rgb" in layers and backbone_of(clf.model_).name in layers
    loaded = load_model(save_model(clf, tmp_path / "model"))
    np.testing.assert_array_equal(loaded.predict_proba(grey), clf.predict_proba(grey))


def test_a_backbone_from_scratch_trains_its_batch_normalisation(scratch, photos):
    x, y = photos
    assert len(scratch.history_["loss"]) == 2
    # From random weights, the whole network trains, batch normalisation included.
    norms = [layer for layer in backbone_of(scratch.model_).layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.trainable for layer in norms)
    # Its running statistics settle within dozens of steps, where ImageNet's 0.999 would take
    # thousands: 6 epochs of 3,000 photos left predictions at chance with 0.999 (0.10) and as
    # good as training with 0.9 (0.20; docs/benchmarks.md has the photos).
    assert {layer.momentum for layer in norms} == {0.9}
    # Floats in [0, 1] and 8-bit pixels are the same images to it.
    np.testing.assert_allclose(scratch.predict_proba(x / np.float32(255)),
                               scratch.predict_proba(x), atol=1e-6)


def weights_of(network):
    return {weight.path: np.array(weight) for weight in network.weights}


def test_fine_tuning_trains_the_head_first_then_the_backbone(photos, pretrained):
    x, y = photos
    clf = CNNClassifier(**SMALL, weights=str(pretrained), epochs=1, learning_rate=0.01)
    clf.fit(x[:60], y[:60])
    backbone = backbone_of(clf.model_)
    saved = keras.applications.MobileNetV3Small(include_top=False, weights=None,
                                                input_shape=(32, 32, 3))
    saved.load_weights(pretrained)
    before = weights_of(saved)
    # Epoch 1 of 1 is a frozen epoch: the backbone is exactly the file's.
    assert all(np.array_equal(before[path], value)
               for path, value in weights_of(backbone).items())
    assert not backbone.trainable and clf.score(x[60:], y[60:]) > 0.5
    clf.partial_fit(x[:60], y[:60], epochs=2)
    after = weights_of(backbone)
    changed = {path for path in after if not np.array_equal(before[path], after[path])}
    assert any("conv" in path for path in changed)
    # Batch normalisation keeps the statistics it learnt, and its scale and shift.
    assert not [path for path in changed if "batch_normalization" in path or "/bn" in path
                or "moving" in path], changed
    assert float(clf.model_.optimizer.learning_rate) == pytest.approx(0.001)
    assert len(clf.history_["loss"]) == 3


def test_trainable_layers_limits_what_fine_tuning_changes(photos, pretrained):
    x, y = photos
    clf = CNNClassifier(**SMALL, weights=pretrained, epochs=2, learning_rate=0.01,
                        trainable_layers=10).fit(x[:60], y[:60])
    backbone = backbone_of(clf.model_)
    trained = [layer.name for layer in backbone.layers if layer.trainable_weights]
    top = {layer.name for layer in backbone.layers[-10:]}
    assert trained and set(trained) <= top


def test_imagenet_weights_offline_say_which_file_goes_where(photos, monkeypatch, tmp_path):
    from keras.src.utils import file_utils

    def offline(file_name, origin, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or "
                        "service not known")

    monkeypatch.setattr(file_utils, "get_file", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    x, y = photos
    with pytest.raises(OSError) as error:
        CNNClassifier(**SMALL).fit(x[:10], y[:10])
    message = str(error.value)
    assert "ImageNet weights of backbone='mobilenet_v3_small' could not be downloaded" in message
    assert "put weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5" in message
    assert str(tmp_path / "models") in message and "weights=PATH" in message


def test_weights_in_the_format_keras_downloads_load_by_path(photos, tmp_path):
    # Keras's ImageNet files are HDF5 in the format of Keras 2, e.g.
    # weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5: a user copies one in by hand.
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    network = keras.applications.MobileNetV3Small(include_top=False, weights=None,
                                                  input_shape=(32, 32, 3))
    path = tmp_path / "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, network)
    x, y = photos
    clf = CNNClassifier(**SMALL, weights=str(path), epochs=1).fit(x[:16], y[:16])
    for expected, loaded in zip(network.weights, backbone_of(clf.model_).weights, strict=True):
        np.testing.assert_array_equal(np.array(expected), np.array(loaded))


def test_weights_files_that_do_not_fit_are_named(photos, tmp_path):
    x, y = photos
    with pytest.raises(FileNotFoundError, match=r"weights='.*nope.h5': no such file"):
        CNNClassifier(**SMALL, weights=str(tmp_path / "nope.h5")).fit(x[:10], y[:10])
    other = keras.applications.MobileNetV3Large(include_top=False, weights=None,
                                                input_shape=(32, 32, 3))
    other.save_weights(tmp_path / "large.weights.h5")
    with pytest.raises(ValueError, match="cannot be loaded into mobilenet_v3_small without"):
        CNNClassifier(**SMALL, weights=tmp_path / "large.weights.h5").fit(x[:10], y[:10])


@pytest.mark.parametrize(("change", "match"), [
    (lambda x: x[:, :20, :20], r"at least 32×32 pixels, but these are 20×20"),
    (lambda x: np.concatenate([x, x[..., :1]], axis=-1), r"1 or 3 channels\), not 4"),
])
def test_images_a_backbone_cannot_take_are_refused(photos, change, match):
    x, y = photos
    with pytest.raises(ValueError, match=match):
        CNNClassifier(**SMALL, weights=None).fit(change(x[:10]), y[:10])


def test_augmentation_changes_training_images_only(photos):
    x, y = photos
    clf = CNNClassifier(filters=(4,), dense_units=8, epochs=1, augment="standard",
                        random_state=0).fit(x[:40], y[:40])
    kinds = [type(layer).__name__ for layer in clf.model_.layers]
    assert kinds[1:6] == ["RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation",
                          "RandomContrast"]
    images = x[:8] / np.float32(255)
    # Predictions see the images as they are, every time; training sees them changed.
    np.testing.assert_array_equal(clf.predict_proba(images), clf.predict_proba(images))
    seen = keras.Model(clf.model_.input, clf.model_.layers[5].output)
    np.testing.assert_allclose(seen(images, training=False), images, atol=1e-6)
    assert not np.allclose(seen(images, training=True), images, atol=1e-3)
    with pytest.raises(ValueError, match=r"augment names \['blur'\]"):
        clone(clf).set_params(augment={"blur": 0.1}).fit(x[:10], y[:10])


@pytest.mark.parametrize("tta", ["flip", "shift", "standard"])
def test_test_time_augmentation_averages_fixed_views(photos, tta):
    x, y = photos
    clf = CNNClassifier(filters=(4,), dense_units=8, epochs=1, random_state=0).fit(x, y)
    images = x[:20] / np.float32(255)
    plain = clf.predict_proba(images)
    clf.set_params(tta=tta)
    averaged = clf.predict_proba(images)
    np.testing.assert_array_equal(averaged, clf.predict_proba(images))
    np.testing.assert_allclose(averaged, clf.predict_proba(x[:20]), atol=1e-6)
    np.testing.assert_allclose(averaged.sum(axis=1), 1)
    if tta == "flip":
        mirrored = clf.set_params(tta=None).predict_proba(images[:, :, ::-1])
        np.testing.assert_allclose(averaged, (plain + mirrored) / 2, atol=1e-6)


def test_a_backbone_exports_with_its_scaling_inside(scratch, photos, tmp_path):
    import onnxruntime

    from skimgclf.export import export_model, read_description

    # 8-bit pixels: the classifier scales them by 1/255, the backbone back to 0-255, and the
    # export must do both. ONNX only: TFLite's converter takes half a minute over a backbone,
    # and tests/test_export.py checks that format on the tutorial network.
    x, _ = photos
    path = export_model(scratch, tmp_path / "backbone.onnx")
    proba = onnxruntime.InferenceSession(str(path)).run(None, {"images": x})[0]
    np.testing.assert_allclose(proba, scratch.predict_proba(x), rtol=0, atol=1e-5)
    description = read_description(path)
    np.testing.assert_array_equal(np.array(description["classes"])[proba.argmax(axis=1)],
                                  scratch.predict(x))
    assert description["input"]["pil_mode"] == "RGB" and description["loader"] is None


def test_grid_search_chooses_between_backbones(photos):
    x, y = photos
    search = GridSearchCV(
        CNNClassifier(weights=None, filters=(4,), dense_units=0, epochs=1, batch_size=32,
                      random_state=0),
        {"backbone": [None, "mobilenet_v3_small"]}, cv=2, refit=False).fit(x[:40], y[:40])
    assert len(search.cv_results_["params"]) == 2
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_the_estimator_api_holds_with_a_backbone(photos, pretrained, tmp_path):
    x, y = photos
    clf = CNNClassifier(**SMALL, weights=pretrained, epochs=3, validation_split=0.2,
                        early_stopping=True, patience=1, class_weight="balanced",
                        lr_schedule="cosine").fit(x[:60], y[:60])
    assert {"val_loss", "val_accuracy", "learning_rate"} <= set(clf.history_)
    assert clf.history_["learning_rate"][0] == pytest.approx(0.001)
    assert clf.history_["learning_rate"][1] < 0.001 / 10 + 1e-9
    # A saved model, resumed, trains on at the fine-tuning rate, its backbone still unfrozen.
    loaded = load_model(save_model(clf, tmp_path / "model"))
    loaded.partial_fit(x[:60], y[:60])
    assert backbone_of(loaded.model_).trainable
    assert len(loaded.history_["loss"]) == len(clf.history_["loss"]) + 1
