"""``ImageEmbedder``: a pretrained backbone as a scikit-learn transformer, images → features."""

import hashlib
import logging
import os
import sys
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ._backbones import BACKBONES, backbone_features
from ._backend import keras, keras_session, seeded
from ._batches import scaled
from ._embedding_cache import EmbeddingCache
from ._image_input import check_images

logger = logging.getLogger(__name__)


class ImageEmbedder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Embed images with a pretrained network: one row of features per image.

    The features are the globally averaged activations of a ``keras.applications`` network's
    last block, so that any scikit-learn model can learn from them (a "linear probe" of the
    backbone)::

        Pipeline([("load", ImageFolderLoader("photos", color_mode="rgb",
                                             target_size=(224, 224))),
                  ("embed", ImageEmbedder(backbone="mobilenet_v3_small")),
                  ("clf", LogisticRegression(max_iter=1000))])

    Nothing is learned from the images: :meth:`fit` notes their shape and builds the network,
    :meth:`transform` runs it, batch by batch, in inference mode.

    Parameters
    ----------
    backbone : {"mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_v2_b0", \
            "resnet50_v2", "convnext_tiny"}, default="mobilenet_v3_small"
        The ``keras.applications`` network, without its classification top. It takes pixels
        in [0, 1] or 8-bit ones and scales them to its own convention inside; grey images are
        repeated to three channels; images must be at least 32×32 pixels (224×224 is what
        ImageNet weights were trained on). Features per image: 576, 960, 1280, 2048 and 768.
    weights : "imagenet", str, path-like or None, default="imagenet"
        ``"imagenet"`` through Keras's own download and cache (``~/.keras/models``); the path
        of a weights file of the backbone without its top (the file Keras downloads, or one
        saved with ``save_weights``), for machines without internet access; None for random
        weights, drawn at each ``fit`` (seeded by ``random_state``).
    batch_size : int, default=64
        Images per inference batch. Besides the images themselves, the memory taken grows
        with it, not with the number of images: 8-bit ones are scaled to float a batch at a
        time.
    cache : str, path-like or None, default=None
        A folder keeping the embedding of every image transformed, so that repeated transforms
        (the folds and candidates of a grid search, later runs) compute each image's once. An
        entry is keyed by the image's pixels (bytes, shape and dtype: the same picture as
        float and as 8-bit pixels makes two entries), the backbone, its weights (a weights
        file by its SHA-256, random weights by ``random_state``) and the versions of Keras and
        its backend. Each image's is a file of 4 bytes per feature. The folder can be shared
        by embedders, processes and runs, and with ImageFolderLoader's ``cache``. With
        ``weights=None`` it needs a ``random_state``: unseeded random weights differ at every
        fit, and so would their embeddings.
    device : str, default=None
        Where to build and run the network: None lets Keras choose (a GPU when one is
        visible), ``"cpu"`` forces the CPU, ``"gpu"`` or ``"gpu:1"`` names a GPU.
    input_shape : tuple of int, default=None
        ``(height, width)`` or ``(height, width, channels)`` of one image, to reshape 2-D
        input of flattened images (rows of pixels), as CNNClassifier does: without it, rows
        of ``d = s*s`` pixels become ``s×s`` grey images. Images given as ``(n, h, w)`` or
        ``(n, h, w, c)`` arrays need none.
    random_state : int or None, default=None
        Seeds the random weights of ``weights=None``, so that every fit draws the same ones
        (and ``cache`` can keep their embeddings); unused with other weights.
    verbose : bool, default=False
        Show a progress bar while embedding.

    Attributes
    ----------
    n_features_in_ : int
        Values per image seen in ``fit``: ``h * w * c``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``fit`` was given a DataFrame with string column names.
    image_shape_ : tuple of int
        ``(height, width, channels)`` of the images the network takes.
    n_features_out_ : int
        Features per image, the width of the backbone's last block.
    model_ : keras.Model
        The network, from images to features.

    See Also
    --------
    skimgclf.CNNClassifier : Fine-tunes the same backbones with a small head instead.

    Notes
    -----
    Each :meth:`transform` logs one record on the ``skimgclf.embedder`` logger at INFO level,
    whose attributes ``n_images``, ``n_computed`` and ``n_from_cache`` say how many images
    were transformed, how many embeddings were computed and how many read from ``cache``;
    identical images in one transform are embedded once.

    A fitted embedder transforms the same images to the same bits. An embedding read from
    ``cache`` was computed in the batch the image first came in: with TensorFlow on a CPU,
    an image's embedding has not depended on the other images of its batch (skimgclf's
    tests check it), on a GPU it may differ by float rounding.

    Each fit builds the network anew (about a second for mobilenet_v3_small on a CPU), and
    ``cache`` saves the embeddings, not the fits. To search only the parameters of the steps
    after it, embed once outside the search (``features = embedder.fit_transform(images)``)
    and search on the features.

    A fitted embedder pickles (joblib, multiprocessing) with its network, which Keras stores
    in its ``.keras`` format: loading it needs neither the weights file nor the ImageNet
    download.

    Examples
    --------
    >>> import numpy as np
    >>> from skimgclf import ImageEmbedder
    >>> images = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    >>> embedder = ImageEmbedder(weights=None, random_state=0).fit(images)
    >>> embedder.transform(images).shape
    (4, 576)
    """

    _parameter_constraints = {
        "backbone": [StrOptions(set(BACKBONES))],
        "weights": [None, str, os.PathLike],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "cache": [None, str, os.PathLike],
        "device": [None, str],
        "input_shape": [None, tuple, list],
        # What Keras's seeding (NumPy's among others) takes.
        "random_state": [None, Interval(Integral, 0, 2**32 - 1, closed="both")],
        "verbose": ["verbose"],
    }

    def __init__(self, backbone="mobilenet_v3_small", *, weights="imagenet", batch_size=64,
                 cache=None, device=None, input_shape=None, random_state=None, verbose=False):
        self.backbone = backbone
        self.weights = weights
        self.batch_size = batch_size
        self.cache = cache
        self.device = device
        self.input_shape = input_shape
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Images, (n, h, w) or (n, h, w, c), besides rows of pixels.
        tags.input_tags.three_d_array = True
        # The features are float32 whatever the input.
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    def fit(self, X, y=None):
        """Note the shape of the images ``X`` and build the network; nothing is learned.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or (n_samples, n_features)
            Images, or rows of pixels reshaped as described for ``input_shape``. Float values
            are used as given: scale pixels to [0, 1] first (ImageFolderLoader does). uint8
            images are read as 0-255 pixels, and a ``numpy.memmap`` is not read here.
        y : ignored
            Present for the API.

        Returns
        -------
        self : ImageEmbedder
            The fitted embedder.

        Raises
        ------
        ValueError
            If the images are smaller than the backbone takes, or have neither 1 nor 3
            channels; if ``weights`` is a file the backbone's weights cannot be loaded from;
            if ``cache`` is set with unseeded random weights.
        FileNotFoundError
            If ``weights`` names no file.
        OSError
            If the ImageNet weights cannot be downloaded.
        """
        self._validate_params()
        self._validate_images(X, reset=True)
        with keras_session(self.device):
            self.model_ = self._build_network()
        self.n_features_out_ = int(self.model_.output_shape[-1])
        self._weights_id = _weights_id(self.weights, self.random_state)
        # Refused here rather than at the first transform, which may come much later.
        self._embedding_cache()
        return self

    def transform(self, X):
        """Embed the images ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or (n_samples, n_features)
            Images of the shape seen in ``fit`` (or the same number of values per image): float
            pixels in [0, 1], or uint8 ones scaled a batch at a time, so that a
            ``numpy.memmap`` is never loaded whole.

        Returns
        -------
        ndarray of shape (n_samples, n_features_out_), float32
            The features of each image, in the order of ``X``.

        Raises
        ------
        ValueError
            If the images differ in shape from those seen in ``fit``.
        """
        check_is_fitted(self)
        X = self._validate_images(X, reset=False)
        cache = self._embedding_cache()
        with keras_session(self.device):
            if cache is None:
                embeddings = self._embed(X, np.arange(len(X)))
                n_computed, n_from_cache = len(X), 0
            else:
                embeddings, n_computed, n_from_cache = self._embed_cached(X, cache)
        logger.info("embedded %d images with %s: %d computed, %d from the cache", len(X),
                    self.backbone, n_computed, n_from_cache,
                    extra={"n_images": len(X), "n_computed": n_computed,
                           "n_from_cache": n_from_cache})
        return embeddings

    @property
    def _n_features_out(self):
        # What ClassNamePrefixFeaturesOutMixin numbers the output features by.
        return self.n_features_out_

    def _validate_images(self, X, reset):
        # The same images as CNNClassifier takes, with the same messages.
        return check_images(self, X, reset=reset)[0]

    def _build_network(self):
        images = keras.Input(shape=self.image_shape_, name="images")
        with seeded(self.random_state):
            features, _ = backbone_features(images, self.backbone, self.weights)
        return keras.Model(images, features, name="image_embedder")

    def _embedding_cache(self):
        """The cache of this embedder's embeddings, or None without ``cache``."""
        if self.cache is None:
            return None
        if self._weights_id is None:
            raise ValueError(
                f"cache={os.fspath(self.cache)!r} keeps embeddings for later fits, but "
                "weights=None with random_state=None draws new random weights at every fit, "
                "whose embeddings differ: set random_state to an int to draw the same weights "
                "every time, or cache=None")
        backend = keras.backend.backend()
        return EmbeddingCache(self.cache, (
            self.backbone, self._weights_id, keras.__version__, backend,
            getattr(sys.modules.get(backend), "__version__", None),
            keras.config.dtype_policy().name))

    def _embed(self, X, rows):
        """Embeddings of the images ``X[rows]``, as float32."""
        embeddings = np.empty((len(rows), self.n_features_out_), np.float32)
        # A batch at a time, rather than Keras's predict, which copies a float array whole
        # into a tensor first; 8-bit pixels are scaled batch by batch, so memory stays bounded
        # by the batch (a memory map is read in file order, rows being in increasing order).
        with tqdm(total=len(rows), disable=not self.verbose, unit="image",
                  desc="Embedding images") as bar:
            for start in range(0, len(rows), self.batch_size):
                batch = X[rows[start:start + self.batch_size]]
                if batch.dtype == np.uint8:
                    batch = scaled(batch)
                embeddings[start:start + len(batch)] = self.model_.predict_on_batch(batch)
                bar.update(len(batch))
        return embeddings

    def _embed_cached(self, X, cache):
        """Embeddings of ``X``, read from ``cache`` or computed and stored there.

        Returns
        -------
        embeddings : ndarray of shape (n_samples, n_features_out_), float32
        n_computed, n_from_cache : int
            Distinct images embedded, and read from the cache.
        """
        embeddings = np.empty((len(X), self.n_features_out_), np.float32)
        entries = [cache.entry(image) for image in X]
        # Rows holding an image seen in an earlier row are copied from it; the first rows of
        # the others are read, or computed (in increasing order).
        first_rows, copies, todo = {}, [], []
        for row, entry in enumerate(entries):
            first = first_rows.setdefault(entry, row)
            if first != row:
                copies.append((row, first))
                continue
            embedding = cache.get(entry, self.n_features_out_)
            if embedding is None:
                todo.append(row)
            else:
                embeddings[row] = embedding
        if todo:
            embeddings[todo] = self._embed(X, np.array(todo))
            for row in todo:
                cache.put(entries[row], embeddings[row])
        for row, first in copies:
            embeddings[row] = embeddings[first]
        return embeddings, len(todo), len(first_rows) - len(todo)


def _weights_id(weights, random_state):
    """What the backbone's ``weights`` are, for the keys of the cache.

    None for random weights drawn without a seed, which differ at every fit.
    """
    if weights is None:
        return None if random_state is None else ("random", random_state)
    if weights == "imagenet":
        return weights
    digest = hashlib.sha256()
    with open(weights, "rb") as file:
        while block := file.read(2**20):
            digest.update(block)
    return ("sha256", digest.hexdigest())
