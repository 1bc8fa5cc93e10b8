"""``CNNClassifier``: a convolutional network with the scikit-learn classifier API, on scikeras.

scikeras 0.13 predates scikit-learn's tag API: its ``KerasClassifier`` is not recognised as a
classifier (no stratified folds, no soft voting), its parameters are read from ``__dict__``,
its input checks treat images as tables and its seeding leaves TensorFlow unable to run an
unseeded fit. This subclass keeps scikeras's skeleton (initialisation, label encoding,
callbacks, warm start, pickling of the Keras model) and replaces those parts.
"""

# First: Keras starts here, quietly and with skimgclf's settings, before scikeras imports it.
from ._backend import keras, keras_session, seeded

# isort: split
import os
import warnings
from numbers import Integral, Real

import numpy as np
from scikeras.utils.transformers import ClassifierLabelEncoder
from scikeras.wrappers import KerasClassifier
from sklearn.base import BaseEstimator
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.utils import ClassifierTags, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import check_is_fitted

from ._backbones import BACKBONES
from ._batches import PixelBatches
from ._constraints import Rule
from ._image_input import check_images
from ._interrupts import interrupts_between_batches
from ._network import (
    AUGMENT_KINDS,
    AUGMENT_PRESETS,
    build_network,
    compile_network,
    set_trainable,
)
from ._precision import PRECISIONS, is_native, network_precision, resolve_precision
from ._schedules import schedule_callback
from ._tta import TTA_PRESETS, predict_views

# What this subclass takes from scikeras beyond its public API: methods and properties of
# KerasClassifier, and the attributes its `_initialize` sets. scikeras 0.13 is its last release;
# tests/test_classifier.py checks that each is still there, so that a release renaming one
# fails naming it rather than deep inside a fit.
SCIKERAS_METHODS = ("_initialize", "_initialize_callbacks", "_validate_sample_weight",
                    "initialized_", "current_epoch")
SCIKERAS_STATE = ("_random_state", "_fit_callbacks", "target_encoder_")


def _is_keras_optimizer(value):
    # Keras decides which names are valid ("adam", "AdamW", ...), not a list kept here.
    if not isinstance(value, str):
        return False
    try:
        keras.optimizers.get(value)
    except (ValueError, KeyError, TypeError):
        return False
    return True


class CNNClassifier(KerasClassifier):
    """Convolutional neural network image classifier.

    A scikit-learn classifier (``is_classifier`` is True, cross-validation stratifies, soft
    voting, stacking and calibration accept it) around a Keras network. With the defaults it
    is the classic Keras tutorial network: Conv(32) – Conv(64) – MaxPool – Dropout(0.25) –
    Flatten – Dense(128) – Dropout(0.5) – softmax, Adam at 1e-3. With a ``backbone``, it is a
    pretrained network of ``keras.applications`` with a small head, fine-tuned as fastai's
    ``fine_tune`` and Keras's transfer-learning guide do: the head alone first, the backbone's
    weights kept, then the backbone too at a lower rate.

    Parameters
    ----------
    backbone : {"mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_v2_b0", \
            "resnet50_v2", "convnext_tiny"} or None, default=None
        None is the tutorial's network. A name builds that ``keras.applications`` network
        without its top, then global average pooling, ``dropout``, the dense layer of
        ``dense_units`` and ``dense_dropout``, and the softmax; ``filters``, ``kernel_size``,
        ``pool_size`` and ``batch_norm`` are then unused. It takes pixels in [0, 1] or 8-bit
        ones, as the tutorial network does, and scales them to its own convention inside;
        grey images are repeated to three channels; images must be at least 32×32 pixels
        (224×224 is what ImageNet weights were trained on).
    weights : "imagenet", str, path-like or None, default="imagenet"
        The backbone's starting weights: ``"imagenet"`` through Keras's own download and
        cache (``~/.keras/models``); the path of a weights file of the backbone without its
        top (the file Keras downloads, or one saved with ``save_weights``), for machines
        without internet access; None for random weights, trained from scratch. Unused
        without a backbone.
    filters : tuple of int or tuple of tuples of int, default=(32, 64)
        Number of filters of each ReLU ``Conv2D``, one layer per entry. A tuple of ints is one
        block of convolutions, followed by the max pooling and dropout; a tuple of tuples, such
        as ``((32, 32), (64, 64))``, makes one such block per inner tuple.
    kernel_size : int or pair of int, default=3
        Convolution kernel, clipped to images smaller than it.
    pool_size : int or pair of int, default=2
        Max-pooling window after each block of convolutions, clipped likewise; a 1×1 pool is
        left out.
    dropout : float, default=0.25
        Dropout rate after each block of convolutions, or after a backbone's pooling.
    dense_units : int, default=128
        Width of the hidden dense layer; 0 leaves it out.
    dense_dropout : float, default=0.5
        Dropout rate after the dense layer.
    batch_norm : bool, default=False
        Put a ``BatchNormalization`` between each convolution and its ReLU.
    optimizer : str or keras.optimizers.Optimizer subclass, default="adam"
        Name or class of the Keras optimizer, created afresh at each fit.
    learning_rate : float, default=0.001
        Learning rate of the optimizer.
    lr_schedule : {"cosine", "one_cycle"} or None, default=None
        ``"cosine"`` lowers the learning rate at the start of each epoch along half a cosine,
        from ``learning_rate`` at the first epoch towards 0 after ``epochs`` epochs.
        ``"one_cycle"`` sets it at every step: up from ``learning_rate / 10`` to
        ``learning_rate`` over the first 30 % of the steps, then along half a cosine down to
        ``learning_rate / 1000`` (Smith and Topin's one-cycle policy; its peak can be higher
        than a constant rate's, such as 3e-3 for Adam). Either schedule starts again every
        ``epochs`` epochs of ``partial_fit``; None keeps the rate constant.
    epochs : int, default=10
        Passes over the training data per ``fit``, ``freeze_epochs`` included.
    freeze_epochs : int, default=1
        With a pretrained backbone (``weights`` not None), the first epochs train the head
        alone, so that its random start does not disturb the backbone's weights; the backbone
        is then unfrozen. Unused with random weights, where everything trains from the start.
    trainable_layers : "all" or int, default="all"
        How many of the backbone's top layers train after ``freeze_epochs``: ``"all"``, or a
        number; 0 keeps the whole backbone frozen (its features only feed the head). Its batch
        normalisation keeps its statistics throughout.
    fine_tune_learning_rate : float or None, default=None
        Learning rate once the backbone trains; None takes ``learning_rate`` / 10. The
        optimizer starts afresh at that point.
    batch_size : int, default=64
        Samples per gradient step, and per prediction batch. 64 rather than Keras's 32:
        training runs about 14 % faster on a CPU and reaches the same accuracy after the
        same epochs (docs/benchmarks.md).
    validation_split : float, default=0.0
        Fraction of the training data held out to report ``val_loss`` and ``val_accuracy`` in
        ``history_`` after every epoch. The held-out share is stratified, every class in
        proportion, and drawn by :func:`validation_rows` (seeded by ``random_state``, by 0 when
        it is None, so that refits and resumed fits hold out the same images), not taken from
        the end of the data as Keras would. It is held out of every ``fit`` and
        ``partial_fit`` call.
    early_stopping : bool, default=False
        Stop when the loss, or ``val_loss`` with a ``validation_split``, has not improved for
        ``patience`` epochs, and keep the best weights seen.
    patience : int, default=3
        Epochs without improvement before early stopping ends training.
    augment : {"flip", "light", "standard"}, dict or None, default=None
        Random changes to the training images, made by Keras layers in front of the network
        and only while training: ``"flip"`` mirrors left to right; ``"light"`` adds shifts up
        to 5 % and rotations up to 3 % of a turn; ``"standard"`` flips, shifts and zooms up to
        10 %, rotates up to 5 % of a turn and changes contrast up to 10 %. The presets mirror
        images: for digits or text, give a dict without ``"flip"``. A dict sets the amounts
        itself: ``{"flip": "horizontal", "rotation": 0.1, "zoom": 0.1,
        "translation": 0.1, "contrast": 0.2}`` (any of them; flip takes ``"horizontal"``,
        ``"vertical"`` or ``"horizontal_and_vertical"``). It pays on photos, not on centred,
        size-normalised images such as Fashion-MNIST's (docs/benchmarks.md).
    tta : {"flip", "shift", "standard"} or None, default=None
        Test-time augmentation: ``predict_proba`` averages the probabilities of each image
        and fixed changes of it: ``"flip"`` its mirror; ``"shift"`` it shifted by 5 % up,
        down, left and right (for images a mirror changes the meaning of, such as digits);
        ``"standard"`` both. Predictions stay deterministic.
    input_shape : tuple of int, default=None
        ``(height, width)`` or ``(height, width, channels)`` of one image, used to reshape
        2-D input of flattened images (rows of pixels, as in a CSV). Without it, rows of
        ``d = s*s`` pixels become ``s×s`` grayscale images and other rows ``1×d`` images.
        Images given as ``(n, h, w)`` or ``(n, h, w, c)`` arrays need no ``input_shape``.
    device : str, default=None
        Where to build, train and predict: ``None`` lets Keras choose (a GPU when one is
        visible), ``"cpu"`` forces the CPU, ``"gpu"`` or ``"gpu:1"`` names a GPU.
    precision : {"auto", "float32", "mixed_bfloat16", "mixed_float16"}, default="auto"
        The arithmetic of the network's layers, as a Keras dtype policy: the mixed ones
        compute in 16 bits and keep the weights, the loss and the probabilities in float32.
        ``"auto"`` takes ``"mixed_bfloat16"`` where the hardware runs it natively (a CPU with
        AVX-512 BF16 or AMX under TensorFlow; a GPU of compute capability 8.0 or more),
        ``"mixed_float16"`` on a GPU of capability 7.x, and ``"float32"`` elsewhere: on a CPU
        without it, bfloat16 is emulated and about ten times slower. ``precision_`` says which
        was used. A saved model keeps it where it is loaded, unless that machine would
        emulate it: there it computes in float32.
    callbacks : list of keras.callbacks.Callback, default=None
        Extra Keras callbacks for training (instances, or classes to be instantiated).
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, ``{label: weight}``; multiplied into ``sample_weight``.
    warm_start : bool, default=False
        If True, ``fit`` continues training the current network instead of building anew.
    random_state : int, RandomState instance or None, default=None
        Seeds Python, NumPy and the Keras backend (weights, dropout, shuffling) so that a
        given seed gives identical predictions on the TensorFlow backend.
    verbose : int, default=0
        Keras progress output during fit and predict (0 silent, 1 progress bar, 2 one line
        per epoch).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, in the order of ``predict_proba``'s columns.
    n_classes_ : int
        Number of classes.
    n_features_in_ : int
        Values per sample seen in ``fit``: ``h * w * c`` for images.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``fit`` was given a DataFrame with string column names.
    image_shape_ : tuple of int
        ``(height, width, channels)`` of the images the network takes.
    model_ : keras.Model
        The fitted network.
    history_ : dict of str to list of float
        Per-epoch ``loss`` and ``accuracy`` (and ``val_…`` with a ``validation_split``,
        ``learning_rate`` with an ``lr_schedule``).
    precision_ : str
        The Keras dtype policy the network computes in: ``"float32"``, ``"mixed_bfloat16"``
        or ``"mixed_float16"``.

    See Also
    --------
    skimgclf.ImageFolderLoader : Turns a column of image names into the array this takes.

    Notes
    -----
    Each fit that builds a network first clears Keras's global state
    (``keras.backend.clear_session``), which keeps memory flat over a grid search; networks
    fitted earlier keep working. Run parallel fits in processes (joblib's default), not
    threads, which would clear each other's state.

    With ``random_state`` set, fits on the CPU are bit-for-bit reproducible. On a GPU, some
    cuDNN kernels are not; call ``tf.config.experimental.enable_op_determinism()`` first if
    identical results matter more than speed (it makes every later unseeded TensorFlow random
    op fail, so skimgclf does not switch it on for you).

    Ctrl-C (KeyboardInterrupt) during training is raised before the next batch rather than
    inside TensorFlow, which an exception could leave corrupt; a second Ctrl-C raises at once.
    This holds in the main thread where Python's own SIGINT handler is in place, and leaves a
    handler of your own alone.

    Examples
    --------
    >>> from skimgclf import CNNClassifier
    >>> from skimgclf.datasets import load_fashion_mnist_sample
    >>> (x_train, y_train), (x_test, y_test) = load_fashion_mnist_sample()
    >>> clf = CNNClassifier(epochs=1, random_state=0).fit(x_train / 255, y_train)
    >>> clf.predict_proba(x_test[:2] / 255).shape
    (2, 10)
    """

    _parameter_constraints = {
        "backbone": [None, StrOptions(set(BACKBONES))],
        "weights": [None, str, os.PathLike],
        "filters": ["array-like"],
        "kernel_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "pool_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "dense_units": [Interval(Integral, 0, None, closed="left")],
        "dense_dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "optimizer": [Rule(_is_keras_optimizer, "the name of a Keras optimizer, such as "
                                                "'adam', 'sgd' or 'rmsprop'"), type],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "lr_schedule": [None, StrOptions({"cosine", "one_cycle"})],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "freeze_epochs": [Interval(Integral, 0, None, closed="left")],
        "trainable_layers": [StrOptions({"all"}), Interval(Integral, 0, None, closed="left")],
        "fine_tune_learning_rate": [None, Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "validation_split": [Interval(Real, 0, 1, closed="left")],
        "early_stopping": ["boolean"],
        "patience": [Interval(Integral, 0, None, closed="left")],
        "augment": [None, StrOptions(set(AUGMENT_PRESETS)), dict],
        "tta": [None, StrOptions(set(TTA_PRESETS))],
        "input_shape": [None, tuple, list],
        "device": [None, str],
        "precision": [StrOptions(set(PRECISIONS))],
        "callbacks": [None, list],
        "class_weight": [None, dict, StrOptions({"balanced"})],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, *, backbone=None, weights="imagenet", filters=(32, 64), kernel_size=3,
                 pool_size=2, dropout=0.25, dense_units=128, dense_dropout=0.5,
                 batch_norm=False, optimizer="adam", learning_rate=0.001, lr_schedule=None,
                 epochs=10, freeze_epochs=1, trainable_layers="all",
                 fine_tune_learning_rate=None, batch_size=64, validation_split=0.0,
                 early_stopping=False, patience=3, augment=None, tta=None, input_shape=None,
                 device=None, precision="auto", callbacks=None, class_weight=None,
                 warm_start=False, random_state=None, verbose=0):
        # scikeras's __init__ is not called: it sets parameters this class does not have.
        self.backbone = backbone
        self.weights = weights
        self.filters = filters
        self.kernel_size = kernel_size
        self.pool_size = pool_size
        self.dropout = dropout
        self.dense_units = dense_units
        self.dense_dropout = dense_dropout
        self.batch_norm = batch_norm
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.epochs = epochs
        self.freeze_epochs = freeze_epochs
        self.trainable_layers = trainable_layers
        self.fine_tune_learning_rate = fine_tune_learning_rate
        self.batch_size = batch_size
        self.validation_split = validation_split
        self.early_stopping = early_stopping
        self.patience = patience
        self.augment = augment
        self.tta = tta
        self.input_shape = input_shape
        self.device = device
        self.precision = precision
        self.callbacks = callbacks
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose

    # scikeras lists whatever sits in __dict__ as parameters and accepts any name in
    # set_params; scikit-learn's versions read the signature above.
    _get_param_names = classmethod(BaseEstimator._get_param_names.__func__)
    set_params = BaseEstimator.set_params
    __repr__ = BaseEstimator.__repr__

    def __sklearn_tags__(self):
        # scikeras declares its tags with the `_more_tags` that scikit-learn 1.7 stopped
        # reading, and puts ClassifierMixin after BaseEstimator, whose tags win.
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        # A network's score on the checks' toy data depends on the epochs they can afford.
        tags.classifier_tags = ClassifierTags(multi_label=False, poor_score=True)
        tags.target_tags.required = True
        tags.input_tags.three_d_array = True
        return tags

    def __sklearn_is_fitted__(self):
        return hasattr(self, "model_")

    def fit(self, X, y, sample_weight=None):
        """Build the network and train it on images ``X`` with labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or (n_samples, n_features)
            Training images, or rows of pixels reshaped as described for ``input_shape``.
            Float values are used as given: scale pixels to [0, 1] first (ImageFolderLoader
            does). uint8 images are read as 0-255 pixels and scaled to [0, 1] a batch at a
            time, so a ``numpy.memmap`` larger than memory is never loaded whole.
        y : array-like of shape (n_samples,)
            Labels of any kind: ints, strings, a pandas categorical.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample in the loss; samples of weight 0 are left out.

        Returns
        -------
        self : CNNClassifier
            The fitted classifier.
        """
        self._validate_params()
        self._fit(X, y, sample_weight, warm_start=self.warm_start, epochs=self.epochs,
                  initial_epoch=0)
        return self

    def partial_fit(self, X, y, classes=None, sample_weight=None, *, epochs=1):
        """Train the network for one more epoch (or ``epochs``), building it on the first call.

        The epochs are numbered after those in ``history_``, which they extend, so that a
        learning-rate schedule continues where it was: ``partial_fit(X, y, epochs=clf.epochs -
        clf.current_epoch)`` finishes an interrupted fit from a saved model.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or (n_samples, n_features)
            Training images, as for ``fit``.
        y : array-like of shape (n_samples,)
            Labels.
        classes : array-like of shape (n_classes,), default=None
            All the labels the classifier will meet; needed on the first call when ``y`` does
            not hold every class.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample in the loss.
        epochs : int, default=1
            Epochs to train in this call.

        Returns
        -------
        self : CNNClassifier
            The updated classifier.
        """
        self._validate_params()
        if not (isinstance(epochs, Integral) and epochs >= 1):
            raise ValueError(f"epochs must be a positive int; got {epochs!r}")
        self._fit(X, y, sample_weight, warm_start=True, epochs=int(epochs),
                  initial_epoch=self.current_epoch, classes=classes)
        return self

    @classmethod
    def from_network(cls, network, classes, *, history=None, feature_names_in=None, **params):
        """Build a fitted classifier around a trained Keras network.

        The one way to make a fitted ``CNNClassifier`` without ``fit``:
        :func:`skimgclf.persistence.load_model` rebuilds saved models with it, and it wraps a
        network trained elsewhere, so that it predicts, scores and trains on
        (``partial_fit``) as any fitted classifier does.

        Parameters
        ----------
        network : keras.Model
            A compiled network taking images of shape ``(n, height, width, channels)``, as
            float pixels in [0, 1], and returning the probabilities of the classes.
        classes : array-like of shape (n_classes,)
            The labels, in the order of the network's outputs.
        history : dict of str to list of float, default=None
            Per-epoch values of the training so far (``history_``); None for none.
        feature_names_in : array-like of str, default=None
            Column names of the DataFrames the classifier takes, if any.
        **params
            Parameters of the classifier, as :meth:`get_params` gives them.

        Returns
        -------
        CNNClassifier
            The fitted classifier.

        Raises
        ------
        ValueError
            If the network does not take images or has not one output per class.
        """
        classifier = cls(**params)
        image_shape = tuple(network.input_shape[1:])
        if len(image_shape) != 3 or not all(isinstance(side, int) for side in image_shape):
            raise ValueError(f"the network must take images of a fixed shape (height, width, "
                             f"channels); it takes {network.input_shape}")
        classes = np.asarray(classes)
        if classes.ndim != 1 or network.output_shape[-1] != len(classes):
            raise ValueError(f"the network has {network.output_shape[-1]} outputs for "
                             f"{classes.size} classes")
        classifier.classes_ = classes
        classifier.target_encoder_ = classifier.target_encoder.fit(classes)
        classifier.n_classes_ = len(classes)
        classifier.image_shape_ = image_shape
        classifier.n_features_in_ = int(np.prod(image_shape))
        if feature_names_in is not None:
            classifier.feature_names_in_ = np.asarray(feature_names_in, dtype=object)
        classifier.history_ = {key: [float(value) for value in values]
                               for key, values in (history or {}).items()}
        classifier.model_ = network
        classifier.precision_ = network_precision(network)
        # As scikeras's `_initialize` does: Keras needs an integer seed.
        state = classifier.random_state
        classifier._random_state = (check_random_state(state).randint(1)
                                    if isinstance(state, np.random.RandomState) else state)
        classifier._initialize_callbacks()
        return classifier

    def predict_proba(self, X):
        """Probability of each class for each image.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or (n_samples, n_features)
            Images of the shape seen in ``fit`` (or the same number of values per sample).

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Probabilities, columns in the order of ``classes_``.
        """
        check_is_fitted(self)
        proba = np.asarray(self._predict_raw(X), dtype=np.float64)
        # The softmax is computed in float32; rows must sum to one at float64 precision.
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X):
        """Most probable class of each image.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or (n_samples, n_features)
            Images of the shape seen in ``fit`` (or the same number of values per sample).

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels, of the kind given to ``fit``.
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X, y, sample_weight=None):
        """Accuracy of ``predict(X)`` against ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or (n_samples, n_features)
            Test images.
        y : array-like of shape (n_samples,)
            True labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        float
            Fraction (or weighted fraction) of correct predictions.
        """
        return accuracy_score(y, self.predict(X), sample_weight=sample_weight)

    @property
    def target_encoder(self):
        """The transformer from labels to the network's integer targets (scikeras hook).

        Returns
        -------
        scikeras.utils.transformers.ClassifierLabelEncoder
            An unfitted encoder, restricted to ``classes_`` when those are known beforehand.
        """
        categories = "auto" if self.classes_ is None else [np.asarray(self.classes_)]
        return ClassifierLabelEncoder(loss="sparse_categorical_crossentropy",
                                      categories=categories)

    def _fit(self, X, y, sample_weight, warm_start, epochs, initial_epoch, classes=None):
        with self._keras_session():
            if warm_start and self.initialized_:
                X, y = self._validate_data(X, y)
            else:
                # A fresh network: drop Keras's global state from earlier fits so that memory
                # stays flat over a grid search and seeded fits start from the same state.
                keras.backend.clear_session()
                self.classes_ = classes  # the target encoder learns them from y when None
                X, y = self._initialize(X, y)
                self.precision_ = network_precision(self.model_)
            X, y, sample_weight = self._weigh_samples(X, y, sample_weight)
            rows = None
            if self.validation_split:
                rows = validation_rows(y, self.validation_split, random_state=self._random_state)
            self._train(X, self.target_encoder_.transform(y), sample_weight, rows, warm_start,
                        epochs, initial_epoch)

    def _weigh_samples(self, X, y, sample_weight):
        if sample_weight is not None:
            # scikeras checks the shape and leaves out the samples of weight 0.
            X, y, sample_weight = self._validate_sample_weight(X, y, sample_weight)
        if self.class_weight is not None:
            # A new array: scikeras scales the caller's sample_weight in place.
            class_weight = compute_sample_weight(self.class_weight, y)
            sample_weight = class_weight if sample_weight is None else sample_weight * class_weight
        return X, y, sample_weight

    def _validate_data(self, X=None, y=None, reset=False, y_numeric=False):
        # scikeras calls this from fit (reset=True, y required) and predict (y=None).
        return check_images(self, X, y, reset=reset)

    def _build_keras_model(self):
        if self.n_classes_ < 2:
            # A softmax over one output always says 1: the network would learn nothing.
            raise ValueError(
                f"y holds only one class ({self.classes_.tolist()[0]!r}); a classifier needs at "
                "least two classes to learn from. Check the label column, or pass every class to "
                "partial_fit's classes.")
        policy, _ = resolve_precision(self.precision, self.device)
        if not is_native(policy, self.device):
            warnings.warn(f"precision={policy!r} is emulated on this machine, which makes "
                          "training several times slower; precision='auto' picks what the "
                          "hardware runs natively", UserWarning, stacklevel=4)
        with self._seeded():
            return build_network(
                self.image_shape_, self.n_classes_, filters=self.filters,
                kernel_size=self.kernel_size, pool_size=self.pool_size, dropout=self.dropout,
                dense_units=self.dense_units, dense_dropout=self.dense_dropout,
                batch_norm=self.batch_norm, optimizer=self.optimizer,
                learning_rate=self.learning_rate, backbone=self.backbone,
                weights=self.weights if self.backbone else None, augment=self._augment(),
                precision=policy, seed=self._random_state)

    def _initialize_callbacks(self):
        super()._initialize_callbacks()
        if self.early_stopping:
            monitor = "val_loss" if self.validation_split else "loss"
            self._fit_callbacks = [*self._fit_callbacks, keras.callbacks.EarlyStopping(
                monitor=monitor, patience=self.patience, restore_best_weights=True)]
        if self.lr_schedule:
            self._fit_callbacks = [*self._fit_callbacks,
                                   schedule_callback(self.lr_schedule, self.epochs, self._rate)]

    def _freezes(self):
        return bool(self.backbone) and self.weights is not None and self.freeze_epochs > 0

    def _rate(self, epoch):
        """The learning rate of ``epoch``: the head's alone, or once the backbone trains."""
        if not self._freezes() or epoch < self.freeze_epochs:
            return self.learning_rate
        return self.fine_tune_learning_rate or self.learning_rate / 10

    def _stages(self, initial_epoch, epochs):
        """``(first, stop, trainable_layers)`` of the runs of epochs, one Keras ``fit`` each.

        With a pretrained backbone, the network's first ``freeze_epochs`` train the head alone
        (0 layers of the backbone) and the others ``trainable_layers``; otherwise all train.
        """
        stop = initial_epoch + epochs
        if not self._freezes():
            return [(initial_epoch, stop, None)]
        stages = []
        if initial_epoch < self.freeze_epochs:
            stages.append((initial_epoch, min(stop, self.freeze_epochs), 0))
        if stop > self.freeze_epochs:
            stages.append((max(initial_epoch, self.freeze_epochs), stop, self.trainable_layers))
        return stages

    def _augment(self):
        if isinstance(self.augment, dict):
            unknown = sorted(set(self.augment) - set(AUGMENT_KINDS))
            if unknown:
                raise ValueError(f"augment names {unknown}; a dict of augmentations takes "
                                 f"{', '.join(AUGMENT_KINDS)}")
        return self.augment

    def _train(self, X, y, sample_weight, rows, warm_start, epochs, initial_epoch):
        if X.dtype == np.uint8:
            data = self._pixel_batches(X, y, sample_weight, rows)
        elif rows is None:
            data = {"x": X, "y": y, "sample_weight": sample_weight, "batch_size": self.batch_size}
        else:
            fit_rows, val_rows = rows
            validation = (X[val_rows], y[val_rows])
            if sample_weight is not None:
                validation += (sample_weight[val_rows],)
            data = {"x": X[fit_rows], "y": y[fit_rows],
                    "sample_weight": None if sample_weight is None else sample_weight[fit_rows],
                    "batch_size": self.batch_size, "validation_data": validation}
        if not warm_start or initial_epoch == 0 or not hasattr(self, "history_"):
            self.history_ = {}
        for first, stop, trainable_layers in self._stages(initial_epoch, epochs):
            if trainable_layers is not None and set_trainable(self.model_, trainable_layers):
                # Keras takes the new set of trainable weights only when compiled again.
                compile_network(self.model_, self.optimizer, self._rate(first))
            with self._seeded(), interrupts_between_batches() as interrupt:
                history = self.model_.fit(**data, epochs=stop, initial_epoch=first,
                                          callbacks=[*self._fit_callbacks, interrupt],
                                          verbose=self.verbose)
            for key, values in history.history.items():
                self.history_.setdefault(key, []).extend(float(value) for value in values)

    def _pixel_batches(self, X, y, sample_weight, rows):
        fit_rows, val_rows = (None, None) if rows is None else rows
        shuffle = np.random.default_rng(check_random_state(self._random_state).randint(2**31))
        data = {"x": PixelBatches(X, y, sample_weight, batch_size=self.batch_size,
                                  rows=fit_rows, shuffle=shuffle)}
        if val_rows is not None:
            data["validation_data"] = PixelBatches(X, y, sample_weight, rows=val_rows,
                                                   batch_size=self.batch_size)
        return data

    def _predict_raw(self, X):
        X, _ = self._validate_data(X)
        with self._keras_session():
            if self.tta is not None:
                return predict_views(self.model_, X, self.tta, self.batch_size)
            if X.dtype == np.uint8:
                return self.model_.predict(PixelBatches(X, batch_size=self.batch_size),
                                           verbose=self.verbose)
            return self.model_.predict(X, batch_size=self.batch_size, verbose=self.verbose)

    def _seeded(self):
        return seeded(self._random_state)

    def _keras_session(self):
        return keras_session(self.device)


def validation_rows(y, validation_split, *, random_state=None):
    """Split the rows of ``y`` into a training part and a stratified held-out part.

    This is how ``CNNClassifier(validation_split=...)`` holds out the images it validates on
    after every epoch: call it with the same labels and seed to know which they are.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        The labels.
    validation_split : float
        The share of the rows to hold out, in (0, 1): every class in proportion.
    random_state : int, RandomState instance or None, default=None
        Seeds the draw; None draws with seed 0, so that the held-out rows of given labels are
        always the same ones.

    Returns
    -------
    train_rows, validation_rows : ndarray of int
        The positions of the rows of each part, in increasing order.

    Raises
    ------
    ValueError
        If a class has too few rows to be split in proportion, or the training part would
        lack a class.

    Examples
    --------
    >>> from skimgclf.classifier import validation_rows
    >>> train, held_out = validation_rows(["cat", "cat", "cat", "dog", "dog", "dog"], 1 / 3)
    >>> len(train), len(held_out)
    (4, 2)
    """
    y = np.asarray(y)
    try:
        train, held_out = train_test_split(
            np.arange(len(y)), test_size=validation_split, stratify=y,
            random_state=0 if random_state is None else random_state)
    except ValueError as exc:
        raise ValueError(f"validation_split={validation_split:g} cannot hold out a stratified "
                         f"share of {len(y)} images: {str(exc).rstrip('.')}. Add images of the "
                         "rarest classes or change validation_split.") from exc
    # A large share can hold out every image of a rare class: the network would never see it.
    unseen = sorted(set(y[held_out].tolist()) - set(y[train].tolist()), key=str)
    if unseen:
        raise ValueError(f"holding out validation_split={validation_split:g} of the images leaves "
                         f"no training image of class {', '.join(map(repr, unseen[:5]))}; lower "
                         "validation_split or add images of that class.")
    return np.sort(train), np.sort(held_out)
