import base64
import html
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import balanced_accuracy_score, classification_report, log_loss

from skimgclf import report
from skimgclf._folders import MANIFEST
from skimgclf.calibration import expected_calibration_error
from skimgclf.datasets import FASHION_MNIST_CLASSES
from skimgclf.report import render_report, write_report

PNGS = (report.CURVES_PNG, report.CONFUSION_PNG, report.MISCLASSIFIED_PNG)
# What the full report adds with probabilities, file names and heat maps, in page order.
FULL_PNGS = (*PNGS, report.CALIBRATION_PNG, report.GRAD_CAM_WRONG_PNG, report.GRAD_CAM_RIGHT_PNG)
TABLES = (report.METRICS_JSON, report.ERRORS_CSV)
# Fashion-MNIST's usual confusions: shirt/T-shirt, pullover/coat, sneaker/ankle boot/sandal.
CONFUSED_WITH = {0: 6, 1: 3, 2: 4, 3: 0, 4: 2, 5: 7, 6: 0, 7: 9, 8: 6, 9: 7}
HISTORY = {"loss": [1.05, 0.62, 0.51, 0.45, 0.41], "accuracy": [0.62, 0.77, 0.81, 0.84, 0.85],
           "val_loss": [0.71, 0.58, 0.52, 0.50, 0.53],
           "val_accuracy": [0.74, 0.79, 0.81, 0.82, 0.81]}


@pytest.fixture(scope="module")
def validation(fashion_sample):
    """300 real test images with predictions that are wrong for every sixth image."""
    _, (x, y) = fashion_sample
    x, y = x[:300], y[:300]
    y_pred = y.copy()
    y_pred[::6] = [CONFUSED_WITH[label] for label in y[::6]]
    return x, y, y_pred


@pytest.fixture(scope="module")
def proba(validation):
    """Probabilities whose largest is y_pred's, of varied confidence."""
    _, _, y_pred = validation
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(len(y_pred), 10))
    logits[np.arange(len(y_pred)), y_pred] = logits.max(axis=1) + rng.exponential(2, len(y_pred))
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


class Explainer:
    """Heat maps that are the images' brightness; remembers the images it was asked about."""

    def __init__(self):
        self.asked = []

    def __call__(self, images):
        self.asked.append(images)
        return images.astype(float) / 255


FILES = np.array([f"img_{i:03d}.png" for i in range(300)])


@pytest.fixture(scope="module")
def full_report(validation, proba, tmp_path_factory):
    x, y, y_pred = validation
    directory = tmp_path_factory.mktemp("report")
    explain = Explainer()
    path = write_report(directory, history=HISTORY, y_true=y, y_pred=y_pred, proba=proba,
                        classes=np.arange(10), images=x, file_names=FILES, explain=explain,
                        class_names=FASHION_MNIST_CLASSES, title="Apparel <run 1>")
    return path, path.read_text(encoding="utf-8"), explain.asked


def png_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
        return image.size


def embedded_pngs(page):
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"',
                                                           page)]


def test_full_report_files_are_valid(full_report):
    path, page, _ = full_report
    assert path.name == "report.html"
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([*FULL_PNGS, *TABLES,
                                                                    "report.html", MANIFEST])
    curves_w, curves_h = png_size(path.parent / report.CURVES_PNG)
    assert 800 < curves_w < 2000 and 300 < curves_h < 800
    matrix_w, matrix_h = png_size(path.parent / report.CONFUSION_PNG)
    assert 600 < matrix_w < 1500 and 600 < matrix_h < 1500
    grid_w, grid_h = png_size(path.parent / report.MISCLASSIFIED_PNG)
    assert 1000 < grid_w < 1600 and 800 < grid_h < 1600  # 50 errors: the first 48, 8 x 6


def test_html_embeds_the_pictures_and_names_the_classes(full_report):
    path, page, _ = full_report
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert embedded_pngs(page) == [(path.parent / name).read_bytes() for name in FULL_PNGS]
    assert "<h1>Apparel &lt;run 1&gt;</h1>" in page
    for name in FASHION_MNIST_CLASSES:
        assert f"<td>{html.escape(name)}</td>" in page
    assert "src=\"http" not in page and "<script" not in page  # self-contained


def test_html_scores_match_sklearn(full_report, validation):
    _, page, _ = full_report
    _, y, y_pred = validation
    assert "Validation accuracy <strong>0.8333</strong> (250 of 300 images right)" in page
    expected = classification_report(y, y_pred, output_dict=True, zero_division=0)
    for label, name in enumerate(FASHION_MNIST_CLASSES):
        scores = expected[str(label)]
        assert (f"<td>{html.escape(name)}</td><td>{scores['precision']:.3f}</td>"
                f"<td>{scores['recall']:.3f}</td><td>{scores['f1-score']:.3f}</td>"
                f"<td>{scores['support']:.0f}</td>") in page
    macro = expected["macro avg"]
    assert f"<td>macro average</td><td>{macro['precision']:.3f}</td>" in page
    assert "<tr><td>val_loss</td>" not in page  # val_ metrics share a row with their metric
    assert "<tr><td>loss</td><td>0.41</td><td>0.53</td></tr>" in page


def test_history_only_replaces_an_earlier_report(tmp_path, validation):
    x, y, y_pred = validation
    write_report(tmp_path, y_true=y[:30], y_pred=y_pred[:30], images=x[:30])
    path = write_report(tmp_path, history={"loss": [0.9, 0.7], "accuracy": [0.6, 0.7]})
    # Pictures of the earlier run are gone: the folder describes one run.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", MANIFEST,
                                                         report.CURVES_PNG]
    page = path.read_text(encoding="utf-8")
    assert "No validation predictions were given." in page
    assert len(embedded_pngs(page)) == 1
    assert png_size(tmp_path / report.CURVES_PNG)[1] > 300


def test_no_history_skips_the_curves(validation, tmp_path):
    x, y, y_pred = validation
    page = write_report(tmp_path, y_true=y[:40], y_pred=y_pred[:40], images=x[:40]
                        ).read_text(encoding="utf-8")
    assert not (tmp_path / report.CURVES_PNG).exists()
    assert "No training history was given." in page
    assert len(embedded_pngs(page)) == 2
    # Without class_names the labels themselves name the classes.
    assert "<td>9</td>" in page


def test_no_misclassified_images(validation, tmp_path):
    x, y, _ = validation
    path = write_report(tmp_path, y_true=y[:50], y_pred=y[:50], images=x[:50],
                        class_names=FASHION_MNIST_CLASSES)
    assert "<strong>1.0000</strong> (50 of 50 images right)" in path.read_text(encoding="utf-8")
    width, height = png_size(tmp_path / report.MISCLASSIFIED_PNG)
    assert height < 200  # one line of text, no grid
    with Image.open(tmp_path / report.MISCLASSIFIED_PNG) as image:
        assert np.asarray(image.convert("L")).min() < 100  # the text is drawn


@pytest.mark.parametrize("shape_of", [
    # As ImageFolderLoader makes them: float32 times 1/255, which can round a hair above 1.
    lambda x: x[..., None].astype(np.float32) * np.float32(1 / 255) * np.float32(1.0000001),
    lambda x: np.stack([x, x // 2, 255 - x], axis=-1),
    lambda x: x.astype(np.int32),
], ids=["float-channel", "uint8-rgb", "int32"])
def test_string_labels_named_by_mapping(shape_of, validation, tmp_path):
    x, y, y_pred = validation
    words = np.array(["top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                      "sneaker", "bag", "boot"], dtype=object)
    names = {word: word.capitalize() + " & co" for word in words}
    path = write_report(tmp_path, y_true=words[y[:60]], y_pred=words[y_pred[:60]],
                        images=shape_of(x[:60]), class_names=names)
    page = path.read_text(encoding="utf-8")
    assert "<td>Boot &amp; co</td>" in page and "50 of 60 images right" in page
    png_size(tmp_path / report.MISCLASSIFIED_PNG)


def test_many_classes(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 60, 1200)
    y_pred = np.where(rng.random(1200) < 0.3, rng.integers(0, 60, 1200), y)
    write_report(tmp_path, y_true=y, y_pred=y_pred)
    width, height = png_size(tmp_path / report.CONFUSION_PNG)
    assert 1200 < width <= 35 * 110 and 1200 < height <= 35 * 110


class FakeHistory:
    history = HISTORY


@pytest.mark.parametrize("kwargs, message", [
    ({"y_true": [0, 1]}, "both y_true and y_pred"),
    ({"y_true": [0, 1], "y_pred": [0]}, "y_true has 2 labels but y_pred has 1"),
    ({"images": np.zeros((2, 8, 8), np.uint8)}, "images were given without y_true"),
    ({"y_true": [0, 1], "y_pred": [0, 1], "images": np.zeros((3, 8, 8), np.uint8)},
     "images holds 3 images but y_true has 2 labels"),
    ({"y_true": [0, 1], "y_pred": [0, 1], "images": np.full((2, 8, 8), 255.0)},
     r"float images must lie in \[0, 1\]; got values from 255 to 255"),
    ({"y_true": [0, 1], "y_pred": [0, 1], "images": np.full((2, 8, 8), 256, np.int16)},
     "integer images must lie in 0..255; got values from 256 to 256"),
    ({"y_true": [0, 1], "y_pred": [0, 1], "images": np.zeros((2, 8, 8, 2), np.uint8)},
     r"got \(2, 8, 8, 2\)"),
    ({"y_true": [0, 1, 2], "y_pred": [0, 1, 2], "class_names": {0: "a", 1: "b"}},
     "no name for the labels 2; it names 0, 1"),
    ({"y_true": ["a", "b"], "y_pred": ["a", "b"], "class_names": ["x", "y"]},
     "the labels .a., .b. are not in 0..1; pass a dict"),
    ({"history": FakeHistory()}, r"got FakeHistory \(pass its .history\)"),
])
def test_bad_input_writes_nothing(kwargs, message, tmp_path):
    directory = tmp_path / "report"
    with pytest.raises(ValueError, match=message):
        write_report(directory, **kwargs)
    assert not directory.exists()


def test_interrupted_write_keeps_the_old_files(validation, tmp_path, monkeypatch):
    x, y, y_pred = validation
    write_report(tmp_path, history=HISTORY, y_true=y[:30], y_pred=y_pred[:30], images=x[:30])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_report(tmp_path, history={"loss": [2.0]}, y_true=y[:30], y_pred=y[:30])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no .tmp left


@pytest.mark.parametrize("name", ["report.html", report.CURVES_PNG, "notes.txt"])
def test_a_folder_holding_a_users_file_is_refused_untouched(tmp_path, name):
    # A report folder is replaced whole: a file skimgclf did not write there, even one named
    # as a report's, must not go with it.
    write_report(tmp_path, history={"loss": [0.9, 0.7]})
    (tmp_path / name).write_text("the user's")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError, match=rf"did not write .*: '{re.escape(name)}'"):
        write_report(tmp_path, history={"loss": [0.5]})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_render_report_returns_the_files_it_would_write(validation, tmp_path):
    x, y, y_pred = validation
    files = render_report(history=HISTORY, y_true=y[:30], y_pred=y_pred[:30], images=x[:30])
    assert sorted(files) == sorted(["report.html", *PNGS, report.METRICS_JSON])
    write_report(tmp_path, history=HISTORY, y_true=y[:30], y_pred=y_pred[:30], images=x[:30])
    for name in PNGS:
        assert files[name] == (tmp_path / name).read_bytes()


def test_library_does_not_import_the_report():
    code = ("import sys, skimgclf, skimgclf.datasets; "
            "sys.exit('skimgclf.report' in sys.modules or 'matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_embedded_pngs_decode(full_report):
    _, page, _ = full_report
    for data in embedded_pngs(page):
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG" and min(image.size) > 100


def test_metrics_json_matches_sklearn(full_report, validation, proba):
    path, page, _ = full_report
    _, y, y_pred = validation
    metrics = json.loads((path.parent / report.METRICS_JSON).read_text())
    expected = classification_report(y, y_pred, output_dict=True, zero_division=0)
    assert metrics["images"] == 300 and metrics["accuracy"] == pytest.approx(250 / 300)
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, y_pred))
    assert [entry["name"] for entry in metrics["per_class"]] == list(FASHION_MNIST_CLASSES)
    for entry in metrics["per_class"]:
        scores = expected[str(entry["label"])]
        assert (entry["precision"], entry["recall"], entry["f1"], entry["support"]) == (
            pytest.approx(scores["precision"]), pytest.approx(scores["recall"]),
            pytest.approx(scores["f1-score"]), scores["support"])
    assert metrics["weighted_average"]["f1"] == pytest.approx(
        expected["weighted avg"]["f1-score"])
    assert metrics["log_loss"] == pytest.approx(log_loss(y, proba, labels=range(10)))
    ece = expected_calibration_error(y, proba)
    assert metrics["expected_calibration_error"] == pytest.approx(ece)
    assert f"expected calibration error {ece:.4f}" in page
    assert f"<strong>{ece:.4f}</strong>" in page  # the calibration section


def test_errors_csv_ranks_the_misclassified_files_by_loss(full_report, validation, proba):
    path, _, asked = full_report
    x, y, y_pred = validation
    errors = pd.read_csv(path.parent / report.ERRORS_CSV)
    assert list(errors.columns) == ["file", "true", "predicted", "p_true", "p_predicted", "loss"]
    rows = np.array([int(name[4:7]) for name in errors["file"]])
    assert sorted(rows) == list(range(0, 300, 6))  # every misclassified file, once
    assert (errors["true"] == y[rows]).all() and (errors["predicted"] == y_pred[rows]).all()
    np.testing.assert_allclose(errors["p_true"], proba[rows, y[rows]], rtol=1e-5)
    np.testing.assert_allclose(errors["p_predicted"], proba[rows, y_pred[rows]], rtol=1e-5)
    np.testing.assert_allclose(errors["loss"], -np.log(proba[rows, y[rows]]), rtol=1e-5)
    assert errors["loss"].is_monotonic_decreasing and errors["loss"].iloc[0] > 2
    # The pictures follow the same order: the heat maps were asked for the 16 worst first,
    # then two right images of each class.
    np.testing.assert_array_equal(asked[0][:16], x[rows[:16]])
    assert len(asked) == 1 and len(asked[0]) == 16 + 2 * 10


def test_heat_maps_are_drawn_over_the_images(full_report):
    path, _, _ = full_report
    with Image.open(path.parent / report.GRAD_CAM_WRONG_PNG) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    # The brightest parts of the garments carry the strongest heat: red, not grey.
    assert ((pixels[..., 0] - pixels[..., 2]) > 100).sum() > 1000


def test_without_file_names_images_are_named_by_position(validation, proba):
    _, y, y_pred = validation
    files = render_report(y_true=y[:60], y_pred=y_pred[:60], proba=proba[:60])
    errors = pd.read_csv(io.BytesIO(files[report.ERRORS_CSV]))
    assert sorted(errors["file"]) == sorted(f"#{i}" for i in range(0, 60, 6))
    assert report.CALIBRATION_PNG in files and report.GRAD_CAM_WRONG_PNG not in files


@pytest.mark.parametrize("kwargs, message", [
    ({"proba": np.full((4, 3), 1 / 3)}, r"shape \(4, 2\).*got \(4, 3\); pass classes="),
    ({"proba": np.full((4, 2), 0.5), "classes": [0, 2]},
     "labels that are not columns of proba: 1"),
    ({"proba": np.full((4, 2), 2.0)}, r"probabilities in \[0, 1\]"),
    ({"file_names": ["a.png"]}, "file_names holds 1 names but y_true has 4"),
    ({"explain": Explainer()}, "explain was given without images"),
    ({"images": np.zeros((4, 8, 8), np.uint8), "explain": lambda images: images[:, :4]},
     r"explain returned heat maps of shape \(4, 4, 8\)"),
])
def test_bad_insight_inputs_write_nothing(kwargs, message, tmp_path):
    directory = tmp_path / "report"
    with pytest.raises(ValueError, match=message):
        write_report(directory, y_true=[0, 1, 1, 0], y_pred=[0, 1, 0, 1], **kwargs)
    assert not directory.exists()
