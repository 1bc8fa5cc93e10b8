"""What a training run did, as pictures and tables: curves, scores per class, the images it
got wrong and why, how far its probabilities can be trusted; one self-contained HTML page.

The command line writes one into every model folder; in Python, :func:`write_report` writes
one for any classifier's history and predictions. The estimators never import this module.
"""

import base64
import csv
import html
import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sklearn.utils import column_or_1d
from sklearn.utils.multiclass import unique_labels

from . import __version__
from ._folders import replacing_folder
from .calibration import N_BINS, expected_calibration_error, reliability_bins

CURVES_PNG = "training_curves.png"
CONFUSION_PNG = "confusion_matrix.png"
MISCLASSIFIED_PNG = "misclassified.png"
LABEL_ISSUES_PNG = "label_issues.png"
CALIBRATION_PNG = "calibration.png"
GRAD_CAM_WRONG_PNG = "grad_cam_misclassified.png"
GRAD_CAM_RIGHT_PNG = "grad_cam_correct.png"
METRICS_JSON = "metrics.json"
ERRORS_CSV = "errors.csv"
REPORT_HTML = "report.html"

_DPI = 110
_GRID_COLUMNS = 8
_GRID_MAX_IMAGES = 48  # six rows of eight: enough to see a pattern, small enough to scan
_ANNOTATE_MAX_CLASSES = 30  # beyond this the counts no longer fit in the cells
# Grad-CAM: the misclassified images of the highest loss, and the first right ones per class,
# for classes up to _CAM_RIGHT_MAX / _CAM_PER_CLASS.
_CAM_WRONG_MAX, _CAM_PER_CLASS, _CAM_RIGHT_MAX = 16, 2, 32
_CAM_ALPHA = 0.6  # the heat's opacity where it is strongest
_TRAIN_COLOR, _VAL_COLOR, _WRONG_COLOR = "#1f77b4", "#ff7f0e", "#c0392b"


def write_report(directory, **inputs):
    """Write the pictures and tables of a training run and one self-contained HTML page.

    The files are those of :func:`render_report`. ``directory`` is written whole: it is built
    beside its place and renamed into it once complete, so an interrupted run leaves the
    earlier report, never half of one. An existing folder is replaced only when skimgclf wrote
    everything in it (an earlier report); any other non-empty folder is refused.

    Parameters
    ----------
    directory : str or path-like
        The report folder to write.
    **inputs
        The keyword arguments of :func:`render_report`: ``history``, ``y_true``, ``y_pred``,
        ``proba``, ``classes``, ``images``, ``file_names``, ``explain``, ``class_names``,
        ``title``, ``label_issues``, ``label_issue_images``.

    Returns
    -------
    pathlib.Path
        The path of ``report.html``.

    Raises
    ------
    ValueError
        When the inputs disagree (see :func:`render_report`); nothing is written then.
    FileExistsError
        If ``directory`` is a file, or a folder holding files that skimgclf did not write.
    """
    files = render_report(**inputs)
    directory = Path(directory)
    with replacing_folder(directory, "report") as stage:
        for name, data in files.items():
            (stage / name).write_bytes(data)
    return directory / REPORT_HTML


def render_report(*, history=None, y_true=None, y_pred=None, proba=None, classes=None,
                  images=None, file_names=None, explain=None, class_names=None,
                  title="skimgclf report", label_issues=None, label_issue_images=None):
    """Draw the pictures and tables of a training run and the HTML page that embeds them.

    Every part is optional and drawn from what is given:

    - ``training_curves.png`` from ``history``;
    - ``confusion_matrix.png``, the scores per class and ``metrics.json`` from ``y_true`` and
      ``y_pred``;
    - ``misclassified.png`` from those and ``images``;
    - ``errors.csv``, the misclassified images by loss, and ``calibration.png``, the
      reliability diagram, from ``proba``; the misclassified images are then shown in the
      order of their loss, highest first;
    - ``grad_cam_misclassified.png`` and ``grad_cam_correct.png`` from ``explain``: where
      the network looked, over the misclassified images and the first right ones per class;
    - ``label_issues.png`` from ``label_issues`` and ``label_issue_images``: the training
      images whose labels look wrong.

    ``report.html`` embeds the pictures, so it can be mailed or opened alone.

    Parameters
    ----------
    history : mapping of str to sequence of float, default=None
        Per-epoch values as in Keras's ``History.history`` or CNNClassifier's ``history_``:
        ``loss``, ``accuracy`` and their ``val_`` counterparts, any of which may be missing.
        Every metric gets a panel, training and validation drawn together.
    y_true, y_pred : array-like of shape (n,), default=None
        True and predicted labels of the validation images (ints or strings); both or neither.
    proba : array-like of shape (n, n_classes), default=None
        Predicted probabilities of the validation images, as ``predict_proba`` returns them.
    classes : array-like of shape (n_classes,), default=None
        The labels of the columns of ``proba``, as the classifier's ``classes_``; None takes
        the sorted labels of ``y_true`` and ``y_pred``, which must then hold every class.
    images : ndarray of shape (n, h, w) or (n, h, w, c), default=None
        The validation images, in the order of ``y_true``: integers 0–255 (uint8 or wider) or
        floats in [0, 1]; ``c`` is 1, 3 or 4.
    file_names : array-like of str of shape (n,), default=None
        The file of each validation image, as the training table names it: ``errors.csv``
        and the pictures name them. Without it, images are named by their position in
        ``y_true``.
    explain : callable, default=None
        Takes some of ``images`` (an array of shape ``(k, h, w)`` or ``(k, h, w, c)``, the
        images as checked above) and returns their heat maps, an array of shape ``(k, h, w)``
        in [0, 1]; typically ``functools.partial(skimgclf.grad_cam, classifier)``.
    class_names : mapping or sequence of str, default=None
        Display names: a mapping from label to name, or a sequence indexed by integer label
        (such as :data:`skimgclf.datasets.FASHION_MNIST_CLASSES`). Without it labels are shown
        as they are.
    title : str, default="skimgclf report"
        Heading of the HTML page.
    label_issues : pandas.DataFrame, default=None
        The table :func:`skimgclf.find_label_issues` returned for the training images: the
        page lists its flagged rows, most suspicious first, by its index (file names, say)
        with their given and suggested labels.
    label_issue_images : ndarray of shape (n, h, w) or (n, h, w, c), default=None
        The images given to :func:`skimgclf.find_label_issues`, in its order (its ``row``
        column), as for ``images``: ``label_issues.png`` shows the most suspicious of them.

    Returns
    -------
    dict of str to bytes
        File name to contents: ``report.html`` and the pictures and tables made.

    Raises
    ------
    ValueError
        When the inputs disagree (lengths, only one of ``y_true``/``y_pred``, ``images``,
        ``proba``, ``file_names`` or ``explain`` without labels, ``explain`` without
        ``images``, a label without a name or a column of ``proba``, heat maps of the wrong
        shape, a ``label_issues`` table that :func:`skimgclf.find_label_issues` did not
        return).
    """
    curves = _check_history(history)
    scored = _check_predictions(y_true, y_pred, images, class_names, proba=proba,
                                classes=classes, file_names=file_names, explain=explain)
    issues = _check_label_issues(label_issues, label_issue_images, class_names)
    # The heat maps first: explain runs the caller's code, whose mistakes should not wait for
    # the other pictures to be drawn.
    pictures = {} if explain is None else _grad_cam_pictures(scored, explain)
    tables = {}
    if curves:
        pictures[CURVES_PNG] = _png(_curves_figure(curves))
    if scored is not None:
        pictures[CONFUSION_PNG] = _png(_confusion_figure(scored))
        tables[METRICS_JSON] = _metrics_json(scored)
        if scored.images is not None:
            pictures[MISCLASSIFIED_PNG] = _png(_misclassified_figure(scored))
        if scored.proba is not None:
            tables[ERRORS_CSV] = _errors_csv(scored)
            pictures[CALIBRATION_PNG] = _png(_calibration_figure(scored))
    if issues is not None and issues.images is not None:
        pictures[LABEL_ISSUES_PNG] = _png(_label_issues_figure(issues))
    page = _html(title, curves, scored, pictures, issues)
    return {REPORT_HTML: page.encode("utf-8"), **pictures, **tables}


# --- inputs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scored:
    """Validated predictions: the labels in sorted order, their display names, the images.

    With probabilities, also each image's probability of its true and its predicted label,
    and its loss. ``wrong`` holds the positions of the misclassified images in the order the
    report shows them: highest loss first when it is known, else as given.
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    labels: np.ndarray
    names: list
    images: np.ndarray | None
    files: np.ndarray
    wrong: np.ndarray
    proba: np.ndarray | None = None
    classes: np.ndarray | None = None
    p_true: np.ndarray | None = None
    p_pred: np.ndarray | None = None
    loss: np.ndarray | None = None

    def name(self, label):
        return self.names[int(np.searchsorted(self.labels, label))]


def _check_history(history):
    """``{metric: (train values or None, validation values or None)}``, loss first."""
    if history is None:
        return {}
    if not isinstance(history, Mapping):
        hint = " (pass its .history)" if hasattr(history, "history") else ""
        raise ValueError(f"history must be a dict of per-epoch lists like Keras's "
                         f"History.history; got {type(history).__name__}{hint}")
    series = {}
    for key, values in history.items():
        values = np.asarray(values, dtype=float)
        if values.ndim != 1:
            raise ValueError(f"history[{key!r}] must be a list of one number per epoch; got "
                             f"shape {values.shape}")
        if len(values):
            series[key] = values
    metrics = sorted(dict.fromkeys(key.removeprefix("val_") for key in series),
                     key=lambda m: m != "loss")
    return {m: (series.get(m), series.get(f"val_{m}")) for m in metrics}


def _check_predictions(y_true, y_pred, images, class_names, *, proba, classes, file_names,
                       explain):
    if y_true is None and y_pred is None:
        given = [name for name, value in (("images", images), ("proba", proba),
                                          ("file_names", file_names), ("explain", explain))
                 if value is not None]
        if given:
            raise ValueError(f"{' and '.join(given)} were given without y_true and y_pred; "
                             f"the report needs the labels of the images to use them")
        return None
    if y_true is None or y_pred is None:
        raise ValueError("give both y_true and y_pred, or neither")
    y_true = column_or_1d(y_true)
    y_pred = column_or_1d(y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    if not len(y_true):
        raise ValueError("y_true and y_pred are empty; there is nothing to report")
    labels = unique_labels(y_true, y_pred)
    if images is not None:
        images = _check_images(images, len(y_true))
    if explain is not None and images is None:
        raise ValueError("explain was given without images; the heat maps need them")
    if file_names is None:
        files = np.array([f"#{i}" for i in range(len(y_true))], dtype=object)
    else:
        files = np.asarray(file_names, dtype=object).astype(str)
        if files.shape != y_true.shape:
            raise ValueError(f"file_names holds {files.size} names but y_true has "
                             f"{len(y_true)} labels")
    names = _display_names(labels, class_names)
    wrong = np.flatnonzero(y_true != y_pred)
    if proba is None:
        return _Scored(y_true, y_pred, labels, names, images, files, wrong)
    proba, classes = _check_proba(proba, classes, labels, len(y_true))
    column = {label: i for i, label in enumerate(classes.tolist())}
    rows = np.arange(len(y_true))
    p_true = proba[rows, [column[label] for label in y_true.tolist()]]
    p_pred = proba[rows, [column[label] for label in y_pred.tolist()]]
    # The cross-entropy of each image, clipped as scikit-learn's log_loss clips.
    loss = -np.log(np.clip(p_true, np.finfo(float).eps, 1))
    wrong = wrong[np.argsort(-loss[wrong], kind="stable")]
    return _Scored(y_true, y_pred, labels, names, images, files, wrong, proba, classes, p_true,
                   p_pred, loss)


def _check_proba(proba, classes, labels, n):
    proba = np.asarray(proba, dtype=float)
    classes = labels if classes is None else column_or_1d(classes)
    if proba.shape != (n, len(classes)):
        hint = ("" if len(proba.shape) != 2 or proba.shape[1] == len(classes) else
                "; pass classes=classifier.classes_, the labels of its columns")
        raise ValueError(f"proba must have shape ({n}, {len(classes)}): one row per label of "
                         f"y_true, one column per class; got {proba.shape}{hint}")
    if not np.all(np.isfinite(proba)) or proba.min() < 0 or proba.max() > 1:
        raise ValueError("proba must hold probabilities in [0, 1], as predict_proba returns "
                         "them; it holds values outside")
    unknown = sorted(set(labels.tolist()) - set(classes.tolist()), key=str)
    if unknown:
        raise ValueError(f"y_true and y_pred hold labels that are not columns of proba: "
                         f"{_listing(unknown[:5])}; its classes are {_listing(classes[:20])}")
    return proba, classes


def _check_images(images, n):
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] in (3, 4))):
        raise ValueError(f"images must have shape (n, h, w) or (n, h, w, c) with c in 1, 3, 4; "
                         f"got {images.shape}")
    if len(images) != n:
        raise ValueError(f"images holds {len(images)} images but y_true has {n} labels")
    if np.issubdtype(images.dtype, np.integer):
        if images.min() < 0 or images.max() > 255:
            raise ValueError(f"integer images must lie in 0..255; got values from "
                             f"{images.min()} to {images.max()}")
        return images.astype(np.uint8, copy=False)
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"images must be uint8 or float in [0, 1]; got dtype {images.dtype}")
    low, high = float(images.min()), float(images.max())
    if low < -0.5 or high > 1.5:
        raise ValueError(f"float images must lie in [0, 1]; got values from {low:g} to "
                         f"{high:g} (divide by 255, or pass uint8)")
    # Rounding in rescaling and overshoot in resampling leave values a hair outside [0, 1].
    return np.clip(images, 0, 1)


def _display_names(labels, class_names):
    if class_names is None:
        return [str(label) for label in labels]
    if isinstance(class_names, Mapping):
        missing = [label for label in labels if label not in class_names]
        if missing:
            raise ValueError(f"class_names has no name for the labels {_listing(missing)}; it "
                             f"names {_listing(class_names)}")
        return [str(class_names[label]) for label in labels]
    names = list(class_names)
    bad = [label for label in labels
           if not (isinstance(label, (int, np.integer)) and 0 <= label < len(names))]
    if bad:
        raise ValueError(f"class_names is a sequence of {len(names)} names, indexed by integer "
                         f"label, but the labels {_listing(bad)} are not in "
                         f"0..{len(names) - 1}; pass a dict from label to name instead")
    return [str(names[label]) for label in labels]


def _listing(labels):
    return ", ".join(repr(label.item() if isinstance(label, np.generic) else label)
                     for label in labels)


# --- pictures -----------------------------------------------------------------------------


def _png(figure):
    FigureCanvasAgg(figure)  # Agg explicitly: no display, no pyplot state
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def _curves_figure(curves):
    figure = Figure(figsize=(5.2 * len(curves), 4), layout="constrained")
    val_loss = curves.get("loss", (None, None))[1]
    best = None
    if val_loss is not None and np.isfinite(val_loss).any():
        best = int(np.nanargmin(val_loss)) + 1
    for ax, (metric, (train, val)) in zip(figure.subplots(1, len(curves), squeeze=False)[0],
                                          curves.items(), strict=True):
        for values, label, color in ((train, "training", _TRAIN_COLOR),
                                     (val, "validation", _VAL_COLOR)):
            if values is not None:
                # Markers show single epochs until they would blur into the line.
                ax.plot(np.arange(1, len(values) + 1), values,
                        marker="o" if len(values) <= 30 else None, markersize=3.5,
                        color=color, label=f"{label} (last {values[-1]:.4g})")
        if best is not None:
            ax.axvline(best, color="0.55", linestyle=":", linewidth=1.2,
                       label=f"lowest validation loss (epoch {best})")
        ax.set_title(metric.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.set_xlim(0.5, max(len(v) for v in (train, val) if v is not None) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return figure


def _confusion_figure(scored):
    labels, names = scored.labels, scored.names
    counts = confusion_matrix(scored.y_true, scored.y_pred, labels=labels)
    # Colour by the share of each true class, so rare classes are as readable as common ones.
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n = len(labels)
    names = [_shorten(name, 24) for name in names]
    # Cells shrink and fonts with them as classes grow; the margin holds the longest name.
    cell, font = (0.6, 9) if n <= 12 else (0.4, 7) if n <= _ANNOTATE_MAX_CLASSES else (0.22, 5.5)
    side = min(cell * n + max(map(len, names)) * font * 0.6 / 72 + 0.8, 30.0)
    figure = Figure(figsize=(side + 1.3, side + 0.4), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    colorbar = figure.colorbar(image, ax=ax, shrink=0.8)
    colorbar.set_label("share of the true class")
    ax.set_xticks(range(n), names, rotation=45, ha="right", rotation_mode="anchor",
                  fontsize=font)
    ax.set_yticks(range(n), names, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = np.trace(counts) / counts.sum()
    ax.set_title(f"Confusion matrix: {counts.sum()} images, accuracy {accuracy:.4f}")
    if n <= _ANNOTATE_MAX_CLASSES:
        for (row, col), count in np.ndenumerate(counts):
            if count:
                ax.text(col, row, str(count), ha="center", va="center", fontsize=font,
                        color="white" if shares[row, col] > 0.55 else "black")
    return figure


def _misclassified_figure(scored):
    wrong, shown = scored.wrong, scored.wrong[:_GRID_MAX_IMAGES]
    if not len(wrong):
        return _message_figure(f"No misclassified images: all {len(scored.y_true)} are right.")
    heading = f"{len(wrong)} of {len(scored.y_true)} validation images misclassified"
    if len(wrong) > len(shown):
        heading += f"; the first {len(shown)} shown"
    if scored.loss is not None:
        heading += ", highest loss first"
    return _grid_figure(scored.images[shown], _captions(scored, shown), heading)


def _captions(scored, rows):
    """Per image: the line above it (the truth) and the lines below (the prediction, file)."""
    captions = []
    for i in rows:
        predicted = f"predicted: {_shorten(scored.name(scored.y_pred[i]))}"
        if scored.p_pred is not None:
            predicted += f" {scored.p_pred[i]:.2f}"
        color = "black" if scored.y_pred[i] == scored.y_true[i] else _WRONG_COLOR
        captions.append((f"true: {_shorten(scored.name(scored.y_true[i]))}",
                         [(predicted, color), (_shorten(scored.files[i], 22), "0.4")]))
    return captions


def _message_figure(message):
    figure = Figure(figsize=(6, 1.2))
    figure.text(0.5, 0.5, message, ha="center", va="center", fontsize=12)
    return figure


def _grid_figure(images, captions, heading):
    """Images in rows of eight, each with one line of caption above it and some below."""
    columns = min(_GRID_COLUMNS, len(images))
    rows = math.ceil(len(images) / columns)
    below = max(len(lines) for _, lines in captions)
    # One mosaic in one Axes rather than an Axes per image: 48 Axes take seconds to draw.
    # Each cell is the image with a margin for the lines above and below it.
    h, w = images.shape[1:3]
    gap, line = max(1, round(0.15 * w)), max(1, math.ceil(0.2 * h))
    top_margin, bottom_margin = line, below * line
    cell_w, cell_h = w + gap, h + top_margin + bottom_margin
    white = 255 if images.dtype == np.uint8 else 1.0
    mosaic = np.full((rows * cell_h, columns * cell_w, *images.shape[3:]), white, images.dtype)
    inches_per_pixel = 1.3 / max(h, w)
    mosaic_width = columns * cell_w * inches_per_pixel
    width = max(mosaic_width, 5.5)  # room for the heading above a few images
    head = 0.45  # inches for the heading
    height = rows * cell_h * inches_per_pixel + head
    figure = Figure(figsize=(width, height))
    figure.text(0.5, 1 - 0.5 * head / height, heading, ha="center", va="center", fontsize=11)
    ax = figure.add_axes(((1 - mosaic_width / width) / 2, 0, mosaic_width / width,
                          1 - head / height))
    ax.set_axis_off()
    for k, (above, lines) in enumerate(captions):
        top, left = (k // columns) * cell_h + top_margin, (k % columns) * cell_w + gap // 2
        mosaic[top:top + h, left:left + w] = images[k]
        ax.text(left + w / 2, top - 0.08 * line, above, ha="center", va="bottom", fontsize=7.5)
        for j, (text, color) in enumerate(lines):
            ax.text(left + w / 2, top + h + (0.08 + j) * line, text, ha="center", va="top",
                    fontsize=7.5 if j == 0 else 6.5, color=color)
    ax.imshow(mosaic, cmap="gray" if images.ndim == 3 else None, vmin=0, vmax=white,
              interpolation="nearest")
    return figure


def _calibration_figure(scored):
    confidence, accuracy, count = reliability_bins(scored.y_true, scored.proba,
                                                   labels=scored.classes)
    ece = expected_calibration_error(scored.y_true, scored.proba, labels=scored.classes)
    figure = Figure(figsize=(10.4, 4), layout="constrained")
    diagram, histogram = figure.subplots(1, 2)
    width = 1 / N_BINS
    diagram.plot([0, 1], [0, 1], color="0.55", linestyle=":", label="perfect calibration")
    diagram.bar(confidence, accuracy, width=width * 0.9, color=_TRAIN_COLOR, alpha=0.8,
                label="accuracy of the images in each bin")
    diagram.plot(confidence, confidence, linestyle="none", marker="_", markersize=9,
                 color=_WRONG_COLOR, label="their mean confidence")
    diagram.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (probability of the predicted "
                "class)", ylabel="accuracy",
                title=f"Reliability: expected calibration error {ece:.4f}")
    diagram.legend(fontsize=8, loc="upper left")
    diagram.grid(alpha=0.3)
    histogram.bar(confidence, count, width=width * 0.9, color=_VAL_COLOR)
    histogram.set(xlim=(0, 1), xlabel="confidence", ylabel="images",
                  title=f"Confidence of the {len(scored.y_true)} validation images")
    histogram.grid(alpha=0.3)
    return figure


def _grad_cam_pictures(scored, explain):
    """Heat maps over the misclassified images, and over the first right ones of each class."""
    right = []
    for label in scored.labels[:_CAM_RIGHT_MAX // _CAM_PER_CLASS]:
        right += np.flatnonzero((scored.y_true == label) & (scored.y_pred == label)
                                )[:_CAM_PER_CLASS].tolist()
    groups = {GRAD_CAM_WRONG_PNG: (scored.wrong[:_CAM_WRONG_MAX], "misclassified images"),
              GRAD_CAM_RIGHT_PNG: (np.array(right, dtype=int), "right images")}
    rows = np.concatenate([group for group, _ in groups.values()])
    maps = _check_maps(explain(scored.images[rows]), scored, len(rows))
    pictures, start = {}, 0
    for name, (group, what) in groups.items():
        if not len(group):
            pictures[name] = _png(_message_figure(f"No {what} to explain."))
            continue
        overlays = _overlay(scored.images[group], maps[start:start + len(group)])
        start += len(group)
        heading = (f"Where the network found its prediction, in {len(group)} {what} "
                   f"(red: strongest)")
        pictures[name] = _png(_grid_figure(overlays, _captions(scored, group), heading))
    return pictures


def _check_maps(maps, scored, n):
    shape = (n, *scored.images.shape[1:3])
    maps = np.asarray(maps, dtype=float)
    if maps.shape != shape:
        raise ValueError(f"explain returned heat maps of shape {maps.shape} for images of "
                         f"shape {scored.images[:n].shape}; it must return {shape}, one map "
                         f"per image, of the image's height and width")
    return np.clip(np.nan_to_num(maps), 0, 1)


def _overlay(images, maps):
    """The images in grey with the heat over them, opaque where it is strong."""
    grey = images.astype(float) / (255 if images.dtype == np.uint8 else 1)
    if grey.ndim == 4:
        grey = grey[..., :3].mean(axis=-1)
    heat = colormaps["jet"](maps)[..., :3]
    alpha = _CAM_ALPHA * maps[..., None]
    return (1 - alpha) * grey[..., None] + alpha * heat


def _shorten(text, limit=18):
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --- page ---------------------------------------------------------------------------------


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; }
.meta { color: #666; margin-top: 0; }
.headline { font-size: 1.4rem; margin: 1rem 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { padding: 0.25rem 0.8rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.average td { font-weight: 600; background: #f6f6f6; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.note { color: #666; font-style: italic; }
"""


def _html(title, curves, scored, pictures, issues=None):
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">skimgclf {html.escape(__version__)}, {generated}</p>',
    ]
    if scored is None:
        parts.append('<p class="note">No validation predictions were given.</p>')
    else:
        parts.append(_headline(scored))
    parts.append('<h2 id="curves">Training curves</h2>')
    if curves:
        parts += _history_table(curves)
        parts.append(_img(pictures, CURVES_PNG, "loss and metrics per epoch"))
    else:
        parts.append('<p class="note">No training history was given.</p>')
    if scored is not None:
        parts.append('<h2 id="confusion">Confusion matrix</h2>')
        parts.append(_img(pictures, CONFUSION_PNG, "confusion matrix"))
        parts += _class_table(scored)
        parts += _misclassified_section(scored, pictures)
        parts += _calibration_section(scored, pictures)
        parts += _grad_cam_section(pictures)
    if issues is not None:
        parts += _label_issues_section(issues, pictures)
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _headline(scored):
    correct = int(np.sum(scored.y_true == scored.y_pred))
    total = len(scored.y_true)
    scores = _scores(scored)
    more = f"balanced accuracy {scores['balanced_accuracy']:.4f}"
    if "expected_calibration_error" in scores:
        more += f", expected calibration error {scores['expected_calibration_error']:.4f}"
    return (f'<p class="headline">Validation accuracy <strong>{correct / total:.4f}</strong> '
            f"({correct} of {total} images right)</p><p>{more}</p>")


def _scores(scored):
    """The scores per class and overall: what the table shows and metrics.json holds."""
    y_true, y_pred, labels = scored.y_true, scored.y_pred, scored.labels
    # precision_recall_fscore_support rather than classification_report: its dict is keyed by
    # label text, which a label such as "accuracy" or "macro avg" would overwrite.
    per_class = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    recall, support = per_class[1], per_class[3]
    scores = {
        "images": len(y_true),
        "accuracy": float(np.mean(y_true == y_pred)),
        # balanced_accuracy_score's definition, without its warning about predicted classes
        # that no image has: the mean recall of the classes present.
        "balanced_accuracy": float(np.mean(recall[support > 0])),
        "per_class": [_score_entry(precision, recall, f1, support, label=label, name=name)
                      for label, name, precision, recall, f1, support
                      in zip(labels, scored.names, *per_class, strict=True)],
    }
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0)
        scores[f"{average}_average"] = _score_entry(precision, recall, f1, len(y_true))
    if scored.proba is not None:
        scores["log_loss"] = float(np.mean(scored.loss))
        scores["expected_calibration_error"] = expected_calibration_error(
            y_true, scored.proba, labels=scored.classes)
    return scores


def _score_entry(precision, recall, f1, support, **named):
    if "label" in named:
        label = named["label"]
        named["label"] = label.item() if isinstance(label, np.generic) else label
    return {**named, "precision": float(precision), "recall": float(recall),
            "f1": float(f1), "support": int(support)}


def _metrics_json(scored):
    return (json.dumps(_scores(scored), indent=2) + "\n").encode("utf-8")


def _errors_csv(scored):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "true", "predicted", "p_true", "p_predicted", "loss"])
    for i in scored.wrong:
        writer.writerow([scored.files[i], scored.y_true[i], scored.y_pred[i],
                         f"{scored.p_true[i]:.6g}", f"{scored.p_pred[i]:.6g}",
                         f"{scored.loss[i]:.6g}"])
    return buffer.getvalue().encode("utf-8")


def _class_table(scored):
    scores = _scores(scored)
    rows = [
        '<h2 id="scores">Scores per class</h2>', "<table>",
        "<tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>images</th></tr>",
    ]
    for entry in scores["per_class"]:
        rows.append(_score_row(html.escape(entry["name"]), entry))
    for average in ("macro", "weighted"):
        rows.append(_score_row(f"{average} average", scores[f"{average}_average"],
                               css="average"))
    rows.append("</table>")
    rows.append(f"<p>Balanced accuracy, the mean recall of the classes: "
                f"{scores['balanced_accuracy']:.4f}. These scores are in "
                f"<code>{METRICS_JSON}</code> beside this page.</p>")
    return rows


def _score_row(name, entry, css=None):
    opening = f'<tr class="{css}">' if css else "<tr>"
    return (f"{opening}<td>{name}</td><td>{entry['precision']:.3f}</td>"
            f"<td>{entry['recall']:.3f}</td><td>{entry['f1']:.3f}</td>"
            f"<td>{entry['support']}</td></tr>")


def _misclassified_section(scored, pictures):
    parts = ['<h2 id="misclassified">Misclassified validation images</h2>']
    if scored.loss is not None:
        parts.append(f"<p>Highest loss first: the images the network was surest of, wrongly. "
                     f"<code>{ERRORS_CSV}</code> lists all {len(scored.wrong)} by file, with "
                     f"the probabilities of the true and the predicted class and the loss."
                     f"</p>")
    if MISCLASSIFIED_PNG in pictures:
        parts.append(_img(pictures, MISCLASSIFIED_PNG, "misclassified validation images"))
    else:
        parts.append('<p class="note">No images were given.</p>')
    return parts


def _calibration_section(scored, pictures):
    if CALIBRATION_PNG not in pictures:
        return []
    ece = expected_calibration_error(scored.y_true, scored.proba, labels=scored.classes)
    return [
        '<h2 id="calibration">Calibration</h2>',
        f"<p>Can the probabilities be taken at their word? The validation images are binned "
        f"by the probability of their predicted class; in a calibrated classifier each bar "
        f"reaches the diagonal (of the images given 0.8, eight in ten are right). Bars below "
        f"it mean overconfidence, above it underconfidence. The expected calibration error, "
        f"the mean gap weighted by the images in each bin, is <strong>{ece:.4f}</strong>.</p>",
        _img(pictures, CALIBRATION_PNG, "reliability diagram"),
    ]


def _grad_cam_section(pictures):
    if GRAD_CAM_WRONG_PNG not in pictures:
        return []
    return [
        '<h2 id="grad-cam">Where the network looked</h2>',
        "<p>Grad-CAM heat maps: where the evidence for the predicted class lies in each image, "
        "red where it is strongest. A network that looks at the background, a watermark or a "
        "border has learnt a shortcut.</p>",
        _img(pictures, GRAD_CAM_WRONG_PNG, "Grad-CAM over misclassified images"),
        _img(pictures, GRAD_CAM_RIGHT_PNG, "Grad-CAM over right images per class"),
    ]


def _history_table(curves):
    epochs = max(len(v) for pair in curves.values() for v in pair if v is not None)
    rows = [f"<p>{epochs} epoch{'s' if epochs != 1 else ''}; values of the last epoch:</p>",
            "<table>", "<tr><th>metric</th><th>training</th><th>validation</th></tr>"]
    for metric, (train, val) in curves.items():
        cells = [f"{v[-1]:.4g}" if v is not None else "–" for v in (train, val)]
        rows.append(f"<tr><td>{html.escape(metric)}</td><td>{cells[0]}</td>"
                    f"<td>{cells[1]}</td></tr>")
    rows.append("</table>")
    return rows


def _img(pictures, name, alt):
    data = base64.b64encode(pictures[name]).decode("ascii")
    return f'<p><img src="data:image/png;base64,{data}" alt="{alt}" title="{name}"></p>'


# --- likely mislabelled training images ---------------------------------------------------

_ISSUES_SHOWN = 24  # three rows of eight: the images to check first
_ISSUES_LISTED = 50


@dataclass(frozen=True)
class _Issues:
    """The flagged rows of a find_label_issues table, most suspicious first, and their images."""

    flagged: object  # pandas.DataFrame, imported only when a report has label issues
    n_images: int
    name: dict
    images: np.ndarray | None


def _check_label_issues(label_issues, images, class_names):
    import pandas as pd

    from .label_issues import COLUMNS

    if label_issues is None:
        if images is not None:
            raise ValueError("label_issue_images were given without label_issues; pass the "
                             "table that find_label_issues returned for them")
        return None
    if not isinstance(label_issues, pd.DataFrame):
        raise ValueError(f"label_issues must be the DataFrame that find_label_issues returned; "
                         f"got {type(label_issues).__name__}")
    missing = [column for column in COLUMNS if column not in label_issues.columns]
    if missing:
        raise ValueError(f"label_issues lacks the columns {', '.join(missing)}; pass the "
                         f"DataFrame that find_label_issues returned, with all its columns")
    flagged = label_issues[label_issues["is_label_issue"].to_numpy(bool)]
    labels = unique_labels(label_issues["given_label"], label_issues["suggested_label"])
    name = dict(zip(labels, _display_names(labels, class_names), strict=True))
    if images is not None:
        if len(images) != len(label_issues):
            raise ValueError(f"label_issue_images holds {len(images)} images but label_issues "
                             f"has {len(label_issues)} rows; pass the images given to "
                             f"find_label_issues")
        # Only the images shown are checked and converted: the training set may be large.
        shown = flagged["row"].to_numpy()[:_ISSUES_SHOWN]
        images = _check_images(np.asarray(images)[shown], len(shown)) if len(shown) else None
    return _Issues(flagged, len(label_issues), name, images)


def _label_issues_figure(issues):
    flagged = issues.flagged.iloc[:len(issues.images)]
    heading = f"{len(issues.flagged)} of {issues.n_images} training images flagged"
    if len(issues.flagged) > len(flagged):
        heading += f"; the {len(flagged)} most suspicious shown"
    captions = [(f"given: {_shorten(issues.name[given])}",
                 [(f"suggested: {_shorten(issues.name[suggested])}", _WRONG_COLOR)])
                for given, suggested in zip(flagged["given_label"], flagged["suggested_label"],
                                            strict=True)]
    return _grid_figure(issues.images, captions, heading)


def _label_issues_section(issues, pictures):
    flagged = issues.flagged
    parts = [
        '<h2 id="label-issues">Likely mislabelled training images</h2>',
        f"<p>{len(flagged)} of {issues.n_images} training images are flagged: out of fold, "
        f"the model gives their label less than the average probability that images of that "
        f"label get, while another class gets more than its own average (confident "
        f"learning). Look at them first; the most suspicious come first.</p>",
    ]
    if LABEL_ISSUES_PNG in pictures:
        parts.append(_img(pictures, LABEL_ISSUES_PNG, "likely mislabelled training images"))
    if not len(flagged):
        return parts
    listed = flagged.iloc[:_ISSUES_LISTED]
    heading = html.escape(str(flagged.index.name or "row"))
    if len(flagged) > len(listed):
        parts.append(f"<p>The {len(listed)} most suspicious:</p>")
    parts += [
        "<table>", f"<tr><th>{heading}</th><th>given label</th><th>probability</th>"
                   f"<th>suggested label</th><th>probability</th></tr>",
    ]
    for key, row in zip(listed.index, listed.itertuples(index=False), strict=True):
        parts.append(f"<tr><td>{html.escape(str(key))}</td>"
                     f"<td>{html.escape(issues.name[row.given_label])}</td>"
                     f"<td>{row.given_probability:.3f}</td>"
                     f"<td>{html.escape(issues.name[row.suggested_label])}</td>"
                     f"<td>{row.suggested_probability:.3f}</td></tr>")
    parts.append("</table>")
    return parts
