import numpy as np
import pytest

from skimgclf import CNNClassifier, grad_cam
from skimgclf._network import build_network

SIDE, CORNER = 12, {0: 1, 1: 7}  # the top-left corner of each class's square


@pytest.fixture(scope="module")
def squares():
    """A network trained to tell a bright square top left (0) from one bottom right (1).

    Returns the classifier and its training images, 8-bit, with their labels.
    """
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 96)
    x = rng.integers(0, 77, (96, SIDE, SIDE, 1), dtype=np.uint8)
    for image, label in zip(x, y, strict=True):
        image[CORNER[label]:CORNER[label] + 4, CORNER[label]:CORNER[label] + 4] = 255
    clf = CNNClassifier(filters=(8,), dense_units=16, epochs=3, batch_size=32,
                        random_state=0).fit(x, y)
    assert clf.score(x, y) == 1
    return clf, x, y


def test_maps_point_at_the_evidence(squares):
    # The evidence for the second class is its square: the map must lie on it.
    clf, x, y = squares
    maps = grad_cam(clf, x[y == 1][:8])
    corner = CORNER[1]
    square = maps[:, corner:corner + 4, corner:corner + 4].sum(axis=(1, 2))
    elsewhere = (maps.sum(axis=(1, 2)) - square) / (SIDE * SIDE - 16)
    assert (square / 16 > 3 * elsewhere).all(), (square / 16, elsewhere)


def test_maps_are_scaled_per_image_for_the_class_asked(squares):
    clf, x, y = squares
    maps = grad_cam(clf, x[:12])
    assert maps.shape == (12, SIDE, SIDE) and maps.dtype == np.float32
    # 1 where the evidence is strongest; 0 throughout an image without any.
    assert maps.min() >= 0 and set(maps.max(axis=(1, 2)).round(6)) <= {0.0, 1.0}
    # The predicted class by default; 8-bit pixels are scaled as predict scales them.
    np.testing.assert_allclose(grad_cam(clf, x[:12], clf.predict(x[:12])), maps, atol=1e-6)
    np.testing.assert_allclose(grad_cam(clf, x[:12] / np.float32(255)), maps, atol=1e-5)
    # The other class's evidence lies elsewhere.
    assert np.abs(grad_cam(clf, x[:12], 1 - y[:12]) - maps).mean() > 0.05
    # Any layer with a feature map; the first convolution is the only one here.
    np.testing.assert_allclose(grad_cam(clf, x[:12], layer=clf.model_.layers[1].name), maps)


@pytest.mark.parametrize("kwargs, message", [
    ({"y": ["shoe"] * 12}, "not classes of the estimator: 'shoe'"),
    ({"y": [0, 1]}, "one label per image: 12 labels"),
    ({"layer": "nowhere"}, "layer='nowhere' is not a layer of the network"),
    ({"layer": "dense"}, "Grad-CAM needs a 4-D feature map"),
])
def test_bad_requests_are_named(squares, kwargs, message):
    clf, x, _ = squares
    with pytest.raises(ValueError, match=message):
        grad_cam(clf, x[:12], **kwargs)


def test_maps_of_a_backbone(fashion_sample):
    # A backbone is one layer of the network, a network itself: its output is the map.
    (x, y), _ = fashion_sample
    network = build_network((64, 64, 3), 10, filters=(), kernel_size=3, pool_size=2,
                            dropout=0.0, dense_units=0, dense_dropout=0.0, batch_norm=False,
                            optimizer="adam", learning_rate=1e-3, backbone="mobilenet_v3_small",
                            weights=None, seed=0)
    clf = CNNClassifier.from_network(network, np.arange(10), backbone="mobilenet_v3_small",
                                     weights=None)
    doubled = np.kron(x[:3], np.ones((2, 2), np.uint8))  # 56 x 56: backbones take 32 up
    images = np.pad(doubled, ((0, 0), (4, 4), (4, 4)))[..., None].repeat(3, axis=-1)
    maps = grad_cam(clf, images)
    assert maps.shape == (3, 64, 64) and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1
    # Named, the backbone gives the same maps.
    np.testing.assert_allclose(grad_cam(clf, images, layer="MobileNetV3Small"), maps)
