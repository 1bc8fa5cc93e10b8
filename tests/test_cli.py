"""The ``skimgclf`` command end to end on real Fashion-MNIST images, and every bad input."""

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skimgclf.classifier import validation_rows
from skimgclf.cli import main
from skimgclf.cli._params import UsageError, classifier_parameters, parse_grid, parse_settings
from skimgclf.datasets import FASHION_MNIST_CLASSES
from skimgclf.persistence import load_model

# A network small enough to train in seconds, yet well above chance on 300 images.
TINY = ["--epochs", "3", "--set", "filters=8,16", "--set", "dense_units=32",
        "--set", "random_state=0"]


def run(*argv):
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def assert_one_line_error(status, err, *fragments, code=1):
    assert status == code, err
    # Step messages may come first; the error is the one last line.
    lines = err.strip().splitlines()
    assert [line for line in lines if "error:" in line] == lines[-1:], err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


@pytest.fixture(scope="module")
def digits_style(small_layout, tmp_path_factory):
    """The small layout rewritten as the digits challenge spells it, labels as class names.

    ``filename`` holds ``601.png``-style names and ``category`` the Fashion-MNIST class names,
    so that the column options, names carrying their extension and string labels are exercised.
    Returns ``(root, y_test_names)``.
    """
    layout, _, y_train, _, y_test = small_layout
    root = tmp_path_factory.mktemp("digits_style")
    names = np.array(FASHION_MNIST_CLASSES, dtype=object)
    train = pd.read_csv(layout.train_csv)
    test = pd.read_csv(layout.test_csv)
    pd.DataFrame({"filename": [f"{i}.png" for i in train["id"]],
                  "category": names[y_train]}).to_csv(root / "train.csv", index=False)
    pd.DataFrame({"filename": [f"{i}.png" for i in test["id"]]}).to_csv(root / "test.csv",
                                                                       index=False)
    pd.DataFrame({"filename": [f"{i}.png" for i in test["id"]], "category": names[0]}).to_csv(
        root / "sample_submission.csv", index=False)
    shutil.copytree(layout.train_dir, root / "train")
    shutil.copytree(layout.test_dir, root / "test")
    return root, names[y_test]


@pytest.fixture(scope="module")
def trained(digits_style, tmp_path_factory):
    """A model folder trained once by ``skimgclf train``; returns (root, model_dir, stdout).

    It also ranks likely mislabelled images over 2 folds: two more small trainings.
    """
    root, _ = digits_style
    model_dir = tmp_path_factory.mktemp("trained") / "model"
    status, out, err = run("train", root / "train.csv", "--images", root / "train",
                           "--model-dir", model_dir, "--label-column", "category", *TINY,
                           "--find-label-issues", "--cv", "2")
    assert status == 0, err
    return root, model_dir, out


def test_help_loads_neither_tensorflow_nor_sklearn():
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "skimgclf", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for command in ("train", "predict", "tune", "demo"):
        assert command in done.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()]
    assert "skimgclf.cli" in imported
    # Nor scikit-learn: --help answers in a tenth of a second.
    heavy = ("tensorflow", "keras", "sklearn")
    assert not [name for name in imported if name.split(".")[0] in heavy]


def test_train_writes_model_settings_and_report(trained):
    _, model_dir, out = trained
    accuracy = float(out.split("validation accuracy: ")[1].split()[0])
    assert accuracy > 0.3  # chance is 0.1
    # The classifier held out the very images the report scores.
    history = json.loads((model_dir / "estimator.json").read_text())["fitted"]["history"]
    assert history["val_accuracy"][-1] == pytest.approx(accuracy, abs=5e-5)
    assert json.loads((model_dir / "cli.json").read_text()) == {
        "path_column": "filename", "label_column": "category", "suffix": ""}
    for png in ("training_curves.png", "confusion_matrix.png", "misclassified.png"):
        assert (model_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (model_dir / "report.html").read_text()
    assert page.lstrip().lower().startswith("<!doctype html") and "</html>" in page
    assert "data:image/png;base64," in page
    assert "Ankle boot" in page
    # Only the finished folder is left: no staging folders beside it.
    assert [p.name for p in model_dir.parent.iterdir()] == ["model"]


def test_train_finds_label_issues_by_file_name(trained):
    root, model_dir, out = trained
    train = pd.read_csv(root / "train.csv", dtype=str)
    issues = pd.read_csv(model_dir / "label_issues.csv", dtype={"filename": str})
    assert list(issues.columns) == ["filename", "row", "given_label", "suggested_label",
                                    "given_probability", "suggested_probability",
                                    "label_quality", "is_label_issue"]
    # Every image once, by its name as in the CSV, with its label there; flagged ones first.
    assert sorted(issues["row"]) == list(range(len(train)))
    assert (issues["filename"] == train["filename"][issues["row"]].to_numpy()).all()
    assert (issues["given_label"] == train["category"][issues["row"]].to_numpy()).all()
    assert set(issues["suggested_label"]) <= set(FASHION_MNIST_CLASSES)
    n_flagged = int(issues["is_label_issue"].sum())
    assert 0 < n_flagged < len(train) and issues["is_label_issue"][:n_flagged].all()
    assert f"likely mislabelled: {n_flagged} of {len(train)} training images" in out
    page = (model_dir / "report.html").read_text()
    section = page.split('<h2 id="label-issues">Likely mislabelled training images</h2>')[1]
    first = issues.iloc[0]
    assert (f"<td>{first['filename']}</td><td>{first['given_label']}</td>"
            f"<td>{first['given_probability']:.3f}</td>") in section
    assert (model_dir / "label_issues.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The model folder records the CSV: a retrain may replace it.
    assert "label_issues.csv" in (model_dir / "skimgclf-manifest.json").read_text()


def test_label_issue_folds_are_checked_before_the_images_load(small_layout, tmp_path,
                                                               monkeypatch):
    from skimgclf.loader import ImageFolderLoader

    def never(*args):
        raise AssertionError("images were loaded")

    monkeypatch.setattr(ImageFolderLoader, "transform", never)
    layout, _, y, *_ = small_layout
    smallest = np.bincount(y).min()
    common = [layout.train_csv, "--images", layout.train_dir, "--model-dir", tmp_path / "m",
              "--suffix", ".png"]
    status, _, err = run("train", *common, "--find-label-issues", "--cv", smallest + 1)
    assert_one_line_error(status, err, f"--cv {smallest + 1} folds need at least",
                          f"has {smallest}; lower --cv to {smallest}")
    status, _, err = run("train", *common, "--cv", "3")
    assert_one_line_error(status, err, "--cv is only read with --find-label-issues", code=2)
    assert not (tmp_path / "m").exists()


def test_ctrl_c_while_finding_label_issues_resumes_without_training_again(small_layout,
                                                                         tmp_path, monkeypatch):
    from sklearn.dummy import DummyClassifier

    from skimgclf import label_issues

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    def prior_only(estimator, *args, **kwargs):
        # The network's folds are tested above; what is tested here is the path to them.
        return real(DummyClassifier(), *args, **kwargs)

    real = label_issues.find_label_issues
    layout, *_ = small_layout
    pd.read_csv(layout.train_csv)[:100].to_csv(tmp_path / "train.csv", index=False)
    argv = ["train", tmp_path / "train.csv", "--images", layout.train_dir, "--suffix", ".png",
            "--model-dir", tmp_path / "model", "--validation-split", "0", "--epochs", "1",
            "--set", "filters=4", "--set", "dense_units=0", "--find-label-issues", "--cv", "2"]
    monkeypatch.setattr(label_issues, "find_label_issues", interrupt)
    status, _, err = run(*argv)
    assert status == 130
    assert "after epoch 1 of 1" in err and "--resume" in err
    # Every epoch is done: the resumed run goes straight on to the label issues.
    monkeypatch.setattr(label_issues, "find_label_issues", prior_only)
    status, out, err = run(*argv, "--resume")
    assert status == 0, err
    assert "resuming after epoch 1 of 1" in err
    assert "likely mislabelled:" in out and (tmp_path / "model" / "label_issues.csv").exists()


def test_train_report_names_the_held_out_files_it_got_wrong(trained, digits_style):
    root, model_dir, out = trained
    table = pd.read_csv(root / "train.csv")
    model = load_model(model_dir)
    _, held_out = validation_rows(table["category"], 0.2, random_state=0)
    errors = pd.read_csv(model_dir / "errors.csv")
    metrics = json.loads((model_dir / "metrics.json").read_text())
    accuracy = float(out.split("validation accuracy: ")[1].split()[0])
    assert metrics["accuracy"] == pytest.approx(accuracy, abs=5e-5)
    assert len(errors) == round((1 - accuracy) * len(held_out)) > 0
    # The rows are the held-out files the model gets wrong, by the name the CSV gives them.
    assert set(errors["file"]) <= set(table["filename"].iloc[held_out])
    wrong = table.set_index("filename").loc[errors["file"]]
    assert (errors["true"].to_numpy() == wrong["category"].to_numpy()).all()
    proba = model.predict_proba(wrong.reset_index())
    column = list(model.classes_).index
    np.testing.assert_allclose(errors["loss"], -np.log(
        proba[np.arange(len(errors)), [column(label) for label in errors["true"]]]), rtol=1e-4)
    assert errors["loss"].is_monotonic_decreasing
    page = (model_dir / "report.html").read_text()
    for section in ('id="calibration">Calibration', 'id="grad-cam">Where the network looked'):
        assert f"<h2 {section}</h2>" in page


def test_predict_follows_the_sample_submission(trained, digits_style, tmp_path):
    root, model_dir, _ = trained
    _, y_test = digits_style
    sample = pd.read_csv(root / "sample_submission.csv")
    shuffled = sample.sample(frac=1, random_state=0)
    shuffled.to_csv(tmp_path / "shuffled_sample.csv", index=False)
    output = tmp_path / "submission.csv"

    status, out, err = run("predict", root / "test.csv", "--images", root / "test",
                           "--model-dir", model_dir, "--output", output,
                           "--sample-submission", tmp_path / "shuffled_sample.csv")
    assert status == 0, err
    submission = pd.read_csv(output)
    assert list(submission.columns) == ["filename", "category"]
    assert submission["filename"].tolist() == shuffled["filename"].tolist()
    assert set(submission["category"]) <= set(FASHION_MNIST_CLASSES)
    truth = pd.Series(y_test, index=sample["filename"])
    accuracy = np.mean(truth[submission["filename"]].to_numpy() == submission["category"])
    assert accuracy > 0.3
    assert f"submission written to {output}" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shuffled_sample.csv",
                                                           "submission.csv"]


def test_predict_without_sample_keeps_test_order(trained, tmp_path):
    root, model_dir, _ = trained
    output = tmp_path / "submission.csv"
    status, _, err = run("predict", root / "test.csv", "--images", root / "test",
                         "--model-dir", model_dir, "-o", output, "--quiet")
    assert status == 0, err
    submission = pd.read_csv(output)
    assert list(submission.columns) == ["filename", "category"]
    assert submission["filename"].tolist() == pd.read_csv(root / "test.csv")["filename"].tolist()


def test_predict_ignores_test_labels_with_a_warning(trained, tmp_path):
    root, model_dir, _ = trained
    labelled = pd.read_csv(root / "test.csv").assign(category="Bag")
    labelled.to_csv(tmp_path / "test.csv", index=False)
    status, _, err = run("predict", tmp_path / "test.csv", "--images", root / "test",
                         "--model-dir", model_dir, "-o", tmp_path / "submission.csv", "-q")
    assert status == 0
    assert "warning" in err and "'category' column; it is ignored" in err
    assert (tmp_path / "submission.csv").exists()


def test_options_reach_the_model_and_labels_keep_their_spelling(small_layout, tmp_path):
    layout, *_ = small_layout
    train = pd.read_csv(layout.train_csv, dtype=str)
    train["label"] = "0" + train["label"]  # "07": text, not the number 7
    train.to_csv(tmp_path / "train.csv", index=False)
    status, out, err = run("train", tmp_path / "train.csv", "--images", layout.train_dir,
                           "--suffix", ".png", "--model-dir", tmp_path / "model",
                           "--color-mode", "rgb", "--target-size", "14", "12",
                           "--validation-split", "0", "--epochs", "2", "--set", "filters=4",
                           "--set", "dense_units=0", "--set", "random_state=0", "-q")
    assert status == 0, err
    assert "validation accuracy" not in out  # nothing was held out
    model = load_model(tmp_path / "model")
    assert model.named_steps["load"].get_params()["color_mode"] == "rgb"
    assert tuple(model.named_steps["load"].target_size) == (14, 12)
    assert model.named_steps["cnn"].image_shape_ == (14, 12, 3)
    assert model.named_steps["cnn"].epochs == 2
    assert model.named_steps["cnn"].callbacks is None
    status, _, err = run("predict", layout.test_csv, "--images", layout.test_dir,
                         "--model-dir", tmp_path / "model", "-o", tmp_path / "sub.csv", "-q")
    assert status == 0, err
    labels = pd.read_csv(tmp_path / "sub.csv", dtype=str)["label"]
    assert labels.str.fullmatch(r"0\d").all()


def test_tune_ranks_the_grid_and_saves_the_best(small_layout, tmp_path):
    layout, *_ = small_layout
    status, out, err = run("tune", layout.train_csv, "--images", layout.train_dir,
                           "--suffix", ".png", "--model-dir", tmp_path / "model",
                           "--grid", "filters=4/8", "--grid", "dense_units=0",
                           "--cv", "2", "--epochs", "1", "--set", "random_state=0", "-q")
    assert status == 0, err
    table = out.split("best: ")[0]
    assert "mean accuracy" in table and "filters=4" in table and "filters=8" in table
    best = out.split("best: ")[1].splitlines()[0]
    assert sorted(best.split()) in (["dense_units=0", "filters=4"], ["dense_units=0", "filters=8"])
    assert "validation accuracy" in out
    assert (tmp_path / "model" / "cli.json").exists()
    assert (tmp_path / "model" / "report.html").exists()


def test_demo_quick(tmp_path):
    workdir = tmp_path / "demo"
    status, out, err = run("demo", "--workdir", workdir, "--epochs", "1",
                           "--set", "filters=8", "--set", "dense_units=32")
    assert status == 0, err
    assert str(workdir.resolve()) in err  # where the demo writes is said
    for path in ("data/train.csv", "data/test.csv", "data/sample_submission.csv",
                 "data/train/1.png", "model/report.html", "model/cli.json", "submission.csv"):
        assert (workdir / path).exists(), path
    submission = pd.read_csv(workdir / "submission.csv")
    sample = pd.read_csv(workdir / "data" / "sample_submission.csv")
    assert submission["id"].tolist() == sample["id"].tolist()
    assert float(out.split("validation accuracy: ")[1].split()[0]) > 0.5
    assert float(out.split("test accuracy: ")[1].split()[0]) > 0.5


# Bad input: one line on stderr, exit status 1, and nothing written.


def test_train_missing_label_column_lists_the_columns(small_layout, tmp_path):
    layout, *_ = small_layout
    status, _, err = run("train", layout.train_csv, "--images", layout.train_dir,
                         "--model-dir", tmp_path / "model", "--label-column", "class")
    assert_one_line_error(status, err, "no column 'class'", "columns found: 'id', 'label'")
    assert not (tmp_path / "model").exists()


def test_train_missing_path_column(small_layout, tmp_path):
    layout, *_ = small_layout
    status, _, err = run("train", layout.train_csv, "--images", layout.train_dir,
                         "--model-dir", tmp_path / "model", "--path-column", "file")
    assert_one_line_error(status, err, "no column 'file'", "columns found")


@pytest.mark.parametrize("what", ["csv", "images"])
def test_train_missing_csv_or_folder(small_layout, tmp_path, what):
    layout, *_ = small_layout
    csv = tmp_path / "nope.csv" if what == "csv" else layout.train_csv
    images = tmp_path / "nope" if what == "images" else layout.train_dir
    status, _, err = run("train", csv, "--images", images, "--model-dir", tmp_path / "model")
    assert_one_line_error(status, err, "nope", "not found")
    assert not (tmp_path / "model").exists()


def test_train_missing_images_fails_before_writing(small_layout, tmp_path):
    layout, *_ = small_layout
    images = tmp_path / "images"
    shutil.copytree(layout.train_dir, images)
    for name in ("7.png", "9.png"):
        (images / name).unlink()
    status, _, err = run("train", layout.train_csv, "--images", images,
                         "--model-dir", tmp_path / "model", "--suffix", ".png")
    assert_one_line_error(status, err, f"2 of 300 images are missing from {images}: '7', '9' "
                                       "(with --suffix .png)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


def test_names_without_extension_take_the_one_extension_found(small_layout, tmp_path):
    layout, *_ = small_layout
    # The tutorial's layout: ids without extension in the CSV, 1.png ... in the folder.
    status, out, err = run("train", layout.train_csv, "--images", layout.train_dir,
                           "--model-dir", tmp_path / "model", "--epochs", "1",
                           "--set", "filters=4", "--set", "dense_units=8")
    assert status == 0, err
    assert "names have no extension; using .png, found for all 300" in err
    assert json.loads((tmp_path / "model" / "cli.json").read_text())["suffix"] == ".png"
    status, _, err = run("predict", layout.test_csv, "--images", layout.test_dir,
                         "--model-dir", tmp_path / "model", "-o", tmp_path / "sub.csv")
    assert status == 0, err
    assert len(pd.read_csv(tmp_path / "sub.csv")) == 100


def test_names_without_extension_and_two_extensions_found_are_refused(small_layout, tmp_path):
    layout, *_ = small_layout
    images = tmp_path / "images"
    shutil.copytree(layout.train_dir, images)
    for path in list(images.iterdir()):
        shutil.copy(path, path.with_suffix(".jpg"))
    status, _, err = run("train", layout.train_csv, "--images", images,
                         "--model-dir", tmp_path / "model")
    assert_one_line_error(status, err, "as .jpg and as .png; choose with --suffix")
    for name in ("5.png", "6.png", "7.jpg"):
        (images / name).unlink()
    status, _, err = run("train", layout.train_csv, "--images", images,
                         "--model-dir", tmp_path / "model")
    assert_one_line_error(status, err, "1 of 300 images are missing", ": '7'.",
                          "most of them are there as .jpg: add the missing files")


def test_train_empty_label_names_the_line(small_layout, tmp_path):
    layout, *_ = small_layout
    train = pd.read_csv(layout.train_csv, dtype=str)
    train.loc[4, "label"] = None
    train.to_csv(tmp_path / "train.csv", index=False)
    status, _, err = run("train", tmp_path / "train.csv", "--images", layout.train_dir,
                         "--model-dir", tmp_path / "model", "--suffix", ".png")
    assert_one_line_error(status, err, "1 rows have no 'label'", "line 6")


def test_train_class_too_rare_to_stratify(small_layout, tmp_path):
    layout, *_ = small_layout
    train = pd.read_csv(layout.train_csv, dtype=str)
    train.loc[0, "label"] = "99"
    train.to_csv(tmp_path / "train.csv", index=False)
    status, _, err = run("train", tmp_path / "train.csv", "--images", layout.train_dir,
                         "--model-dir", tmp_path / "model", "--suffix", ".png")
    assert_one_line_error(status, err, "cannot hold out a stratified", "--validation-split")


@pytest.mark.parametrize("command", ["train", "tune"])
def test_a_folder_merely_holding_names_skimgclf_uses_is_never_replaced(small_layout, tmp_path,
                                                                       command):
    # The issue's report: `checkpoint/` is a folder name of other tools, and `cli.json` a file
    # name anyone may use; once they sufficed to make the folder skimgclf's to replace.
    layout, *_ = small_layout
    project = tmp_path / "proj"
    (project / "checkpoint").mkdir(parents=True)
    (project / "thesis.tex").write_text("years of work")
    argv = [command, layout.train_csv, "--images", layout.train_dir, "--suffix", ".png",
            "--model-dir", project, "--epochs", "1"]
    if command == "tune":
        argv += ["--grid", "dropout=0.1/0.2", "--cv", "2"]
    for extra in ("checkpoint", "cli.json"):
        if extra == "cli.json":
            (project / "cli.json").write_text("{}")
        status, _, err = run(*argv)
        assert_one_line_error(status, err, f"{project} holds files that skimgclf did not write",
                              "'checkpoint'", "'thesis.tex'")
        assert (project / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in project.iterdir()) == ["checkpoint", "cli.json", "thesis.tex"]


def test_a_file_put_into_a_model_folder_stops_a_retrain(trained, tmp_path):
    root, model_dir, _ = trained
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    (copy / "notes.txt").write_text("what I tried")
    status, _, err = run("train", root / "train.csv", "--images", root / "train",
                         "--model-dir", copy, "--label-column", "category", *TINY)
    assert_one_line_error(status, err, "entries it does not list: 'notes.txt'")
    assert (copy / "notes.txt").read_text() == "what I tried"


def test_train_refuses_a_folder_of_other_files(small_layout, tmp_path):
    layout, *_ = small_layout
    precious = tmp_path / "model" / "thesis.tex"
    precious.parent.mkdir()
    precious.write_text("years of work")
    status, _, err = run("train", layout.train_csv, "--images", layout.train_dir,
                         "--model-dir", tmp_path / "model", "--suffix", ".png")
    assert_one_line_error(status, err, "holds files that skimgclf did not write")
    assert precious.read_text() == "years of work"


def test_failed_retrain_keeps_the_previous_model(trained, tmp_path):
    root, model_dir, _ = trained
    before = sorted(p.name for p in model_dir.iterdir())
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, err = run("train", root / "train.csv", "--images", empty,
                         "--model-dir", model_dir, "--label-column", "category", *TINY)
    assert status == 1
    assert sorted(p.name for p in model_dir.iterdir()) == before
    assert sorted(p.name for p in model_dir.parent.iterdir()) == ["model"]


def test_predict_sample_ids_must_match_the_test_csv(trained, tmp_path):
    root, model_dir, _ = trained
    sample = pd.read_csv(root / "sample_submission.csv")
    sample.loc[0, "filename"] = "9999.png"
    sample.to_csv(tmp_path / "sample.csv", index=False)
    output = tmp_path / "submission.csv"
    status, _, err = run("predict", root / "test.csv", "--images", root / "test",
                         "--model-dir", model_dir, "-o", output,
                         "--sample-submission", tmp_path / "sample.csv")
    assert_one_line_error(status, err, "does not match", "'9999.png'")
    assert not output.exists()


def test_predict_test_csv_without_the_name_column(trained, tmp_path):
    root, model_dir, _ = trained
    pd.DataFrame({"id": [1, 2]}).to_csv(tmp_path / "test.csv", index=False)
    status, _, err = run("predict", tmp_path / "test.csv", "--images", root / "test",
                         "--model-dir", model_dir, "-o", tmp_path / "submission.csv")
    assert_one_line_error(status, err, "no column 'filename'", "columns found: 'id'")
    assert not (tmp_path / "submission.csv").exists()


@pytest.mark.parametrize("damage", ["missing", "no settings", "corrupt model",
                                    "changed settings"])
def test_predict_unreadable_model_dir(trained, tmp_path, damage):
    root, model_dir, _ = trained
    broken = tmp_path / "model"
    if damage != "missing":
        shutil.copytree(model_dir, broken)
    if damage == "no settings":
        (broken / "cli.json").unlink()
    if damage == "corrupt model":
        for path in broken.iterdir():
            if path.suffix == ".keras":
                path.write_bytes(b"not a keras file")
    if damage == "changed settings":
        (broken / "cli.json").write_text('{"path_column": "label", "label_column": "filename", '
                                         '"suffix": ""}')
    output = tmp_path / "submission.csv"
    status, _, err = run("predict", root / "test.csv", "--images", root / "test",
                         "--model-dir", broken, "-o", output)
    assert_one_line_error(status, err, str(broken))
    assert not output.exists()


def test_predict_output_that_is_a_folder_is_refused_before_the_model_loads(trained, tmp_path,
                                                                          monkeypatch):
    from skimgclf import persistence

    def never(*args):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(persistence, "load_model", never)
    root, model_dir, _ = trained
    status, _, err = run("predict", root / "test.csv", "--images", root / "test",
                         "--model-dir", model_dir, "-o", tmp_path)
    assert_one_line_error(status, err, f"--output {tmp_path} is a folder",
                          f"--output {tmp_path / 'submission.csv'}")


def test_predict_output_in_a_missing_folder(trained, tmp_path):
    root, model_dir, _ = trained
    output = tmp_path / "no" / "such" / "submission.csv"
    status, _, err = run("predict", root / "test.csv", "--images", root / "test",
                         "--model-dir", model_dir, "-o", output)
    assert_one_line_error(status, err, "does not exist")
    assert not (tmp_path / "no").exists()


def test_debug_shows_the_exception(small_layout, tmp_path):
    layout, *_ = small_layout
    with pytest.raises(ValueError, match="no column 'class'"):
        main(["train", str(layout.train_csv), "--images", str(layout.train_dir),
              "--model-dir", str(tmp_path / "m"), "--label-column", "class", "--debug"])


# A malformed command line: one line, exit status 2.


@pytest.mark.parametrize("argv, fragment", [
    (["train", "t.csv", "--images", "i", "--model-dir", "m", "--set", "nosuch=1"],
     "no parameter 'nosuch'; valid names: augment, backbone, batch_"),
    (["train", "t.csv", "--images", "i", "--model-dir", "m", "--set", "dropout"],
     "expected name=value"),
    (["tune", "t.csv", "--images", "i", "--model-dir", "m", "--grid", "units=1/2"],
     "no parameter 'units'"),
])
def test_bad_settings_are_usage_errors(small_layout, argv, fragment):
    layout, *_ = small_layout
    argv = [str(layout.train_csv) if a == "t.csv" else str(layout.train_dir) if a == "i" else a
            for a in argv]
    status, _, err = run(*argv)
    assert_one_line_error(status, err, fragment, code=2)


def test_bad_values_are_refused_before_the_images_load(small_layout, tmp_path, monkeypatch):
    from skimgclf.loader import ImageFolderLoader

    def never(*args):
        raise AssertionError("images were loaded")

    monkeypatch.setattr(ImageFolderLoader, "transform", never)
    layout, *_ = small_layout
    common = [layout.train_csv, "--images", layout.train_dir, "--model-dir", tmp_path / "m",
              "--suffix", ".png"]
    status, _, err = run("train", *common, "--set", "optimizer=nosuch")
    assert_one_line_error(status, err, "--set: The 'optimizer' parameter",
                          "name of a Keras optimizer", "'nosuch'", code=2)
    status, _, err = run("tune", *common, "--grid", "dropout=0.2/1.5")
    assert_one_line_error(status, err, "--grid: The 'dropout' parameter", "1.5", code=2)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("address", ["garbage", "tcp://nosuchhost.invalid:8786",
                                     "ftp://10.0.0.5:8786"])
def test_a_bad_scheduler_address_is_refused_at_once(small_layout, tmp_path, address):
    layout, *_ = small_layout
    status, _, err = run("tune", layout.train_csv, "--images", layout.train_dir,
                         "--model-dir", tmp_path / "m", "--suffix", ".png",
                         "--grid", "dropout=0.1/0.2", "--scheduler", address)
    assert_one_line_error(status, err, f"--scheduler {address}")
    assert "Traceback" not in err and not (tmp_path / "m").exists()


@pytest.mark.parametrize("case", ["missing csv", "missing column", "missing images",
                                  "foreign model folder", "bad setting name"])
def test_typos_are_reported_without_the_heavy_imports(small_layout, tmp_path, case):
    # A typo must cost a fraction of a second: no TensorFlow, no scikit-learn yet.
    layout, *_ = small_layout
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "thesis.tex").write_text("mine")
    argv = {"missing csv": ["train", tmp_path / "nope.csv"],
            "missing column": ["train", layout.train_csv, "--label-column", "klass"],
            "missing images": ["train", layout.test_csv, "--label-column", "id"],
            "foreign model folder": ["train", layout.train_csv],
            "bad setting name": ["train", layout.train_csv, "--set", "dropuot=0.3"]}[case]
    model_dir = tmp_path / ("foreign" if case == "foreign model folder" else "m")
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "skimgclf",
                           *map(str, argv), "--images", str(layout.train_dir),
                           "--model-dir", str(model_dir)],
                          capture_output=True, text=True, timeout=60)
    messages = "\n".join(line for line in done.stderr.splitlines()
                         if not line.startswith("import time:"))
    assert_one_line_error(done.returncode, messages, code=2 if case == "bad setting name" else 1)
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")]
    heavy = ("tensorflow", "keras", "sklearn", "scikeras")
    assert not [name for name in imported if name.split(".")[0] in heavy]


def test_set_names_are_read_without_importing_the_classifier():
    from skimgclf import CNNClassifier

    assert classifier_parameters() == CNNClassifier().get_params()


@pytest.mark.parametrize("argv, fragment", [
    (["train", "t.csv", "--images", "i", "--model-dir", "m", "--epochs", "0"], "--epochs"),
    (["train", "t.csv", "--images", "i", "--model-dir", "m", "--validation-split", "1.5"],
     "--validation-split"),
    (["predict", "t.csv", "--images", "i", "--model-dir", "m"], "--output"),
    (["demo", "--data-dir", "d"], "--data-dir is only read with --full"),
    (["fly"], "invalid choice"),
])
def test_usage_errors_exit_2(argv, fragment):
    status, _, err = run(*argv)
    assert status == 2
    assert fragment in err.strip().splitlines()[-1]


def test_settings_are_parsed_by_the_kind_of_each_parameter():
    defaults = {"filters": (32, 64), "dropout": 0.25, "early_stopping": False,
                "random_state": None, "optimizer": "adam", "epochs": 10}
    assert parse_settings(["filters=16", "dropout=0.3", "early_stopping=True",
                           "random_state=none", "optimizer=sgd", "epochs=4", "epochs=5"],
                          defaults) == {"filters": (16,), "dropout": 0.3, "early_stopping": True,
                                        "random_state": None, "optimizer": "sgd", "epochs": 5}
    assert parse_grid(["filters=16,32/32,64", "dropout=0.25,0.5", "epochs=3/6"], defaults) == {
        "filters": [(16, 32), (32, 64)], "dropout": [0.25, 0.5], "epochs": [3, 6]}


def test_bracketed_settings_are_python_literals_such_as_blocks_of_filters():
    defaults = {"filters": (32, 64)}
    assert parse_settings(["filters=((32, 32), [64, 64])"], defaults) == {
        "filters": ((32, 32), (64, 64))}
    assert parse_grid(["filters=((16,), (32,))/(16, 32)/(64)"], defaults) == {
        "filters": [((16,), (32,)), (16, 32), (64,)]}
    with pytest.raises(UsageError, match=r"--set 'filters=\(\(32,': .*not a Python literal"):
        parse_settings(["filters=((32,"], defaults)
    assert parse_settings(["augment={'rotation': 0.1, 'flip': 'horizontal'}"],
                          {"augment": None}) == {"augment": {"rotation": 0.1,
                                                             "flip": "horizontal"}}


def test_demo_full_without_the_dataset(tmp_path):
    status, _, err = run("demo", "--full", "--data-dir", tmp_path, "--workdir", tmp_path / "d")
    assert_one_line_error(status, err, "Fashion-MNIST", str(tmp_path))
    assert not (tmp_path / "d").exists()


class DieInWideNetwork(keras.callbacks.Callback):
    """Kill the process training a network of two convolutions, as the OOM killer would.

    Defined here, at module level, so that joblib's workers can unpickle it by name.
    """

    def on_train_begin(self, logs=None):
        if sum("conv" in layer.name for layer in self.model.layers) > 1:
            os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.slow
def test_tune_says_a_parallel_worker_died(small_layout, tmp_path, monkeypatch):
    from skimgclf.cli import _jobs

    layout, *_ = small_layout
    classifier = _jobs._classifier
    monkeypatch.setattr(_jobs, "_classifier", lambda *args, **kwargs: classifier(
        *args, **kwargs).set_params(callbacks=[DieInWideNetwork]))
    status, _, err = run("tune", layout.train_csv, "--images", layout.train_dir,
                         "--model-dir", tmp_path / "model", "--suffix", ".png", "--cv", "2",
                         "--n-jobs", "2", "--grid", "filters=4/4,8", "--set", "dense_units=8",
                         "--epochs", "1")
    assert_one_line_error(status, err, "worker process died", "SIGKILL", "--n-jobs 1")
    assert not (tmp_path / "model").exists()


# Wrong data: each case is a clear error naming the file and the fix, or a behaviour stated in
# docs/reliability.md.


def test_train_blank_image_name_names_the_line(small_layout, tmp_path):
    layout, *_ = small_layout
    train = pd.read_csv(layout.train_csv, dtype=str)
    train.loc[5, "id"] = None
    train.to_csv(tmp_path / "train.csv", index=False)
    status, _, err = run("train", tmp_path / "train.csv", "--images", layout.train_dir,
                         "--model-dir", tmp_path / "model", "--suffix", ".png")
    # The CSV's line, not a row of the shuffled training part.
    assert_one_line_error(status, err, "train.csv: 1 rows have no 'id' (line 7)",
                          "fill or drop")
    assert not (tmp_path / "model").exists()


def test_predict_blank_image_name_names_the_line(trained, tmp_path):
    root, model_dir, _ = trained
    test = pd.read_csv(root / "test.csv", dtype=str)
    test.loc[2, "filename"] = None
    test.to_csv(tmp_path / "test.csv", index=False)
    status, _, err = run("predict", tmp_path / "test.csv", "--images", root / "test",
                         "--model-dir", model_dir, "-o", tmp_path / "submission.csv")
    assert_one_line_error(status, err, "test.csv: 1 rows have no 'filename' (line 4)")
    assert not (tmp_path / "submission.csv").exists()


SPELLED_LIKE_MISSING = ["None", "NA", "nan", "null", "n/a", "N/A", "NULL", "#N/A", "-nan", "NaN"]


def test_labels_and_ids_spelled_like_missing_values_are_kept(small_layout, tmp_path):
    # pandas would read each of these as a blank: "50 rows have no 'label'".
    layout, _, y_train, x_test, _ = small_layout
    train = pd.read_csv(layout.train_csv, dtype=str)
    train["label"] = np.array(SPELLED_LIKE_MISSING)[y_train]
    train.to_csv(tmp_path / "train.csv", index=False)
    test = tmp_path / "test"
    test.mkdir()
    for name, pixels in zip(["NA", "None", "null"], x_test, strict=False):
        Image.fromarray(pixels).save(test / f"{name}.png")
    (tmp_path / "test.csv").write_text("id\nNA\nNone\nnull\n")
    status, _, err = run("train", tmp_path / "train.csv", "--images", layout.train_dir,
                         "--model-dir", tmp_path / "model", *TINY, "-q")
    assert status == 0, err
    assert sorted(load_model(tmp_path / "model")["cnn"].classes_) == sorted(SPELLED_LIKE_MISSING)
    status, _, err = run("predict", tmp_path / "test.csv", "--images", test,
                         "--model-dir", tmp_path / "model", "-o", tmp_path / "sub.csv", "-q")
    assert status == 0, err
    submission = pd.read_csv(tmp_path / "sub.csv", dtype=str, keep_default_na=False)
    assert submission["id"].tolist() == ["NA", "None", "null"]
    assert set(submission["label"]) <= set(SPELLED_LIKE_MISSING)


@pytest.mark.parametrize(("spellings", "shown"), [
    ({0: "3", 1: "3.0"}, "'3' and '3.0'"),
    ({0: "cat", 1: "cat "}, "'cat' and 'cat '"),
    ({0: "7", 1: " 7", 2: "07"}, "' 7' and '07' and '7'"),
])
def test_labels_spelled_two_ways_are_refused(small_layout, tmp_path, spellings, shown):
    layout, _, y_train, _, _ = small_layout
    train = pd.read_csv(layout.train_csv, dtype=str)
    for row, spelling in spellings.items():
        train.loc[row, "label"] = spelling
    train.to_csv(tmp_path / "train.csv", index=False)
    status, _, err = run("train", tmp_path / "train.csv", "--images", layout.train_dir,
                         "--model-dir", tmp_path / "model", "--suffix", ".png")
    assert_one_line_error(status, err, "differ only by spaces or by how a number is written",
                          shown, "Spell each class one way")
    assert not (tmp_path / "model").exists()


def test_mixed_sizes_are_resized_to_the_most_common_and_said(small_layout, tmp_path):
    layout, *_ = small_layout
    images = tmp_path / "images"
    shutil.copytree(layout.train_dir, images)
    for name in ("3.png", "4.png"):
        with Image.open(images / name) as image:
            image.resize((30, 30)).save(images / name)
    status, _, err = run("train", layout.train_csv, "--images", images, "--suffix", ".png",
                         "--model-dir", tmp_path / "model", *TINY)
    assert status == 0, err
    assert ("images: grey, of 2 sizes (28×28: 298, 30×30: 2); resizing them to 28×28, the "
            "most common size") in err
    assert load_model(tmp_path / "model")["load"].target_size == (28, 28)


def test_library_words_become_the_options_of_the_command_line():
    from skimgclf.cli import _cli_words

    assert _cli_words("Set target_size=(height, width) to resize them all; or set suffix, "
                      "e.g. suffix='.png'; lower validation_split=0.9 (--suffix .jpg)") == (
        "Set --target-size H W to resize them all; or set --suffix, e.g. --suffix .png; "
        "lower --validation-split 0.9 (--suffix .jpg)")


@pytest.fixture(scope="module")
def colour_layout(small_layout, tmp_path_factory):
    """The small layout's first 120 training and 40 test images, tinted by class, as 32×32 JPEGs."""
    layout, x_train, y_train, x_test, y_test = small_layout
    root = tmp_path_factory.mktemp("colour")
    tints = np.array([[255, 80, 80], [80, 255, 80], [80, 80, 255], [255, 255, 80],
                      [80, 255, 255], [255, 80, 255], [200, 200, 200], [255, 160, 80],
                      [160, 80, 255], [80, 160, 255]]) / 255
    for part, x, y, count in (("train", x_train, y_train, 120), ("test", x_test, y_test, 40)):
        (root / part).mkdir()
        for index in range(count):
            pixels = np.pad(x[index], 2)[..., None] * tints[y[index]]
            Image.fromarray(pixels.astype(np.uint8)).save(root / part / f"{index}.jpg")
        frame = pd.DataFrame({"id": range(count)})
        if part == "train":
            frame["label"] = y[:count]
        frame.to_csv(root / f"{part}.csv", index=False)
    return root


def test_a_backbone_on_colour_photos_end_to_end(colour_layout, tmp_path):
    # The one backbone trained in graph mode, as a user's run trains it.
    root = colour_layout
    status, out, err = run("train", root / "train.csv", "--images", root / "train",
                           "--model-dir", tmp_path / "model", "--epochs", "1",
                           "--set", "backbone=mobilenet_v3_small", "--set", "weights=none",
                           "--set", "dense_units=0", "--set", "random_state=0")
    assert status == 0, err
    assert "names have no extension; using .jpg, found for all 120" in err
    assert "images: in colour (e.g. '0.jpg'), all 32×32" in err
    model = load_model(tmp_path / "model")
    assert model["load"].get_params()["color_mode"] == "rgb"
    assert model["load"].dtype == "uint8" and model["cnn"].backbone == "mobilenet_v3_small"
    assert (tmp_path / "model" / "misclassified.png").exists()
    status, _, err = run("predict", root / "test.csv", "--images", root / "test",
                         "--model-dir", tmp_path / "model", "-o", tmp_path / "sub.csv")
    assert status == 0, err
    assert len(pd.read_csv(tmp_path / "sub.csv")) == 40


def test_images_too_small_for_the_backbone_are_refused_before_loading(small_layout, tmp_path):
    layout, *_ = small_layout
    status, _, err = run("train", layout.train_csv, "--images", layout.train_dir,
                         "--model-dir", tmp_path / "model",
                         "--set", "backbone=mobilenet_v3_small")
    assert_one_line_error(status, err, "28 pixels on their shortest side",
                          "--target-size 224 224")
    assert not (tmp_path / "model").exists()


def test_train_one_class_is_refused_before_loading(small_layout, tmp_path):
    layout, *_ = small_layout
    train = pd.read_csv(layout.train_csv, dtype=str)
    train["label"] = "3"
    train.to_csv(tmp_path / "train.csv", index=False)
    status, _, err = run("train", tmp_path / "train.csv", "--images", layout.train_dir,
                         "--model-dir", tmp_path / "model", "--suffix", ".png")
    assert_one_line_error(status, err, "every row has the label '3' in 'label'",
                          "at least two classes", "--label-column")
    assert not (tmp_path / "model").exists()


def test_train_holdout_taking_every_image_of_a_class(small_layout, tmp_path):
    layout, *_ = small_layout
    train = pd.read_csv(layout.train_csv, dtype=str)
    train.loc[[0, 1], "label"] = "99"
    train.to_csv(tmp_path / "train.csv", index=False)
    # Stratified, a 0.9 holdout still takes both images of class 99: Keras would have failed
    # deep in training on a label outside the network's outputs.
    status, _, err = run("train", tmp_path / "train.csv", "--images", layout.train_dir,
                         "--model-dir", tmp_path / "model", "--suffix", ".png",
                         "--validation-split", "0.9")
    assert_one_line_error(status, err, "leaves no training image of class 99;",
                          "lower --validation-split")
    assert not (tmp_path / "model").exists()


def test_predict_images_of_another_size_than_training(trained, small_layout, tmp_path):
    root, model_dir, _ = trained
    _, _, _, x_test, _ = small_layout
    test = pd.read_csv(root / "test.csv")
    folder = tmp_path / "large"
    folder.mkdir()
    for name, pixels in zip(test["filename"], x_test, strict=True):
        Image.fromarray(pixels).resize((56, 56)).save(folder / name)
    status, _, err = run("predict", root / "test.csv", "--images", folder,
                         "--model-dir", model_dir, "-o", tmp_path / "submission.csv")
    # Without --target-size at training, the network takes the training size only.
    assert_one_line_error(status, err, "images of shape (56, 56, 1)",
                          "the network takes (28, 28, 1)")
    assert not (tmp_path / "submission.csv").exists()
