"""Export to ONNX and TFLite: the exported file predicts what skimgclf predicts, anywhere.

A backbone's export is tested with the backbones, in tests/test_backbones.py, on their network.
"""

import contextlib
import io
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd
import pytest
from sklearn.base import clone

from skimgclf.cli import main
from skimgclf.datasets import FASHION_MNIST_CLASSES
from skimgclf.export import description_path, export_model, read_description
from skimgclf.persistence import load_model

# Keras's steps run eagerly: tracing a few steps costs more than running them. The exporters
# trace the network themselves.
pytestmark = pytest.mark.usefixtures("eager_keras")
ROOT = Path(__file__).resolve().parents[1]
# A network that trains in a second on the sample's images: parity, not accuracy, is tested,
# so in float32 on any machine (tests/test_precision.py exports a 16-bit network).
TINY = ["--epochs", "1", "--set", "filters=4", "--set", "dense_units=8",
        "--set", "random_state=0", "--set", "precision=float32"]


def run(*argv):
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def onnx_proba(path, images):
    session = onnxruntime.InferenceSession(str(path))
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def tflite_proba(path, images):
    import tensorflow as tf

    with warnings.catch_warnings():
        # TensorFlow points to LiteRT's package for its interpreter; it still runs here.
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(path))
    inputs, outputs = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inputs["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inputs["index"], images)
    interpreter.invoke()
    return interpreter.get_tensor(outputs["index"])


RUNTIMES = {"onnx": onnx_proba, "tflite": tflite_proba}


@pytest.fixture(scope="module")
def cli_model(small_layout, tmp_path_factory):
    """A model folder of ``skimgclf train`` whose labels are Fashion-MNIST's class names.

    Returns ``(layout, model_dir, images)``: ``images`` are the test images as a deployer
    decodes them, 8-bit, in the order of the test CSV.
    """
    layout, *_ = small_layout
    root = tmp_path_factory.mktemp("export")
    table = pd.read_csv(layout.train_csv)
    table["label"] = np.array(FASHION_MNIST_CLASSES)[table["label"]]
    table.to_csv(root / "train.csv", index=False)
    model_dir = root / "model"
    status, _, err = run("train", root / "train.csv", "--images", layout.train_dir,
                         "--model-dir", model_dir, "--suffix", ".png", "--quiet", *TINY)
    assert status == 0, err
    model = load_model(model_dir).set_params(load__image_dir=layout.test_dir)
    loader = clone(model.named_steps["load"]).set_params(dtype="uint8", rescale=None)
    images = loader.fit_transform(pd.read_csv(layout.test_csv))
    return layout, model_dir, images


@pytest.fixture(scope="module")
def exported(cli_model, tmp_path_factory):
    """The CLI model exported by ``skimgclf export`` to each format: {format: path}."""
    _, model_dir, _ = cli_model
    folder = tmp_path_factory.mktemp("exported")
    paths = {}
    for format, suffix in (("onnx", ".onnx"), ("tflite", ".tflite")):
        paths[format] = folder / f"model{suffix}"
        status, out, err = run("export", "--model-dir", model_dir, "--format", format,
                               "--output", paths[format])
        assert status == 0, err
        assert f"model written to {paths[format]}" in out
    return paths


@pytest.mark.parametrize("format", ["onnx", "tflite"])
def test_the_exported_model_predicts_what_skimgclf_predicts(cli_model, exported, format):
    layout, model_dir, images = cli_model
    model = load_model(model_dir).set_params(load__image_dir=layout.test_dir)
    table = pd.read_csv(layout.test_csv)
    expected = model.predict_proba(table)
    proba = RUNTIMES[format](exported[format], images)
    assert proba.shape == expected.shape == (100, 10)
    np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-5)
    description = read_description(exported[format])
    # The labels travel as written in the training CSV, slashes and all.
    labels = np.array(description["classes"])[proba.argmax(axis=1)]
    np.testing.assert_array_equal(labels, model.predict(table))
    assert "T-shirt/top" in description["classes"]
    assert description == json.loads(description_path(exported[format]).read_text())
    assert description["input"] == {"shape": [None, 28, 28, 1], "dtype": "uint8",
                                    "pil_mode": "L", "interpolation": "bilinear",
                                    "scale": pytest.approx(1 / 255)}
    assert description["loader"]["color_mode"] == "grayscale"


def test_the_deployment_guide_predicts_a_folder_without_tensorflow(cli_model, exported,
                                                                   tmp_path):
    layout, model_dir, _ = cli_model
    code = re.search(r"## Predicting a folder without TensorFlow.*?```python\n(.*?)```",
                     (ROOT / "docs" / "deploying.md").read_text(), flags=re.DOTALL)[1]
    model = tmp_path / "model.onnx"
    model.symlink_to(exported["onnx"])
    (tmp_path / "model.onnx.json").symlink_to(description_path(exported["onnx"]))
    (tmp_path / "images").symlink_to(layout.test_dir)
    check = "\nimport sys\nassert not {'tensorflow', 'keras', 'skimgclf'} & set(sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", code + check], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = dict(line.split(",", 1) for line in done.stdout.splitlines())

    status, _, err = run("predict", layout.test_csv, "--images", layout.test_dir,
                         "--model-dir", model_dir, "--output", tmp_path / "submission.csv",
                         "--quiet")
    assert status == 0, err
    submission = pd.read_csv(tmp_path / "submission.csv", dtype=str)
    assert printed == dict(zip(submission["id"] + ".png", submission["label"], strict=True))


def assert_one_line_error(status, err, *fragments):
    assert status == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("case", ["missing model folder", "missing extra"])
def test_a_missing_folder_or_extra_is_said_before_the_heavy_imports(tmp_path, case):
    output = tmp_path / "model.onnx"
    # A package set to None in sys.modules is one Python cannot import: as if not installed.
    hide = "sys.modules['tf2onnx'] = None; " if case == "missing extra" else ""
    code = (f"import sys; {hide}from skimgclf.cli import main; "
            f"sys.exit(main(['export', '--model-dir', {str(tmp_path / 'm')!r}, "
            f"'--output', {str(output)!r}]))")
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                          capture_output=True, text=True, timeout=60)
    messages = "\n".join(line for line in done.stderr.splitlines()
                         if not line.startswith("import time:"))
    fragment = ("pip install 'skimgclf[export]'" if case == "missing extra"
                else f"model folder {tmp_path / 'm'} not found")
    assert_one_line_error(done.returncode, messages, fragment)
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")]
    assert not [name for name in imported
                if name.split(".")[0] in ("tensorflow", "keras", "sklearn")]
    assert not output.exists()


@pytest.mark.parametrize("output, fragment", [
    ("model.tflite", "ends in .tflite, which names a tflite file"),
    ("folder", "is a folder; name the file to write"),
    ("missing/model.onnx", "does not exist"),
    ("notes.onnx", "notes.onnx.json exists and was not written by an export"),
])
def test_outputs_that_would_lose_or_confuse_files_are_refused(cli_model, tmp_path, output,
                                                              fragment):
    _, model_dir, _ = cli_model
    (tmp_path / "folder").mkdir()
    notes = tmp_path / "notes.onnx.json"
    notes.write_text("my notes")
    status, _, err = run("export", "--model-dir", model_dir, "--output", tmp_path / output)
    assert_one_line_error(status, err, fragment)
    assert notes.read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "notes.onnx.json"]


def test_test_time_augmentation_is_exported_over_an_earlier_export(cli_model, exported,
                                                                   tmp_path):
    layout, model_dir, images = cli_model
    path = tmp_path / "model.onnx"
    path.write_bytes(b"an earlier export")
    description_path(path).write_text(json.dumps({"format": "skimgclf-export"}))
    # "standard": the mirror and the four shifts.
    model = load_model(model_dir).set_params(cnn__tta="standard",
                                             load__image_dir=layout.test_dir)
    assert export_model(model, path) == path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.onnx.json"]
    assert read_description(path) == json.loads(description_path(path).read_text())
    proba = onnx_proba(path, images[:20])
    np.testing.assert_allclose(proba, model.predict_proba(pd.read_csv(layout.test_csv)[:20]),
                               rtol=0, atol=1e-5)
    # The views changed the probabilities: the export without them differs.
    assert np.abs(proba - onnx_proba(exported["onnx"], images[:20])).max() > 1e-3


def test_other_estimators_and_formats_are_refused(cli_model, tmp_path):
    _, model_dir, _ = cli_model
    with pytest.raises(TypeError, match="got str"):
        export_model("model", tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="format='keras' is not one of 'onnx', 'tflite'"):
        export_model(load_model(model_dir), tmp_path / "m.keras", format="keras")
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="model.keras is neither an ONNX nor a TFLite file"):
        read_description(model_dir / "model.keras")
