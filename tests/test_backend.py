"""Keras's backend as a user meets it: a quiet start, and one clear line when it is missing."""

import subprocess
import sys

import pytest

from skimgclf import _backend


def python(code, *args):
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120)


def test_importing_the_classifier_prints_nothing():
    # TensorFlow's start-up notices came twice, before its logging is even set up.
    done = python("import skimgclf; skimgclf.CNNClassifier")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_what_else_reaches_stderr_while_tensorflow_starts_is_passed_on():
    code = ("import os, sys, warnings\n"
            "import tensorflow\n"  # imported, so that only the test's own lines come now
            "sys.modules.pop('keras', None)\n"
            "os.write(2, b'from C\\n')\n"
            "from skimgclf import _backend\n"
            "print('from Python', file=sys.stderr)\n")
    done = python(code)
    assert done.returncode == 0, done.stderr
    assert done.stderr.endswith("from C\nfrom Python\n")


BLOCK_TENSORFLOW = "import sys; sys.modules['tensorflow'] = None\n"


def test_without_a_backend_the_classifier_says_what_to_install():
    done = python(BLOCK_TENSORFLOW + "import skimgclf\n"
                  "try:\n"
                  "    skimgclf.CNNClassifier\n"
                  "except ImportError as error:\n"
                  "    print(error)\n")
    assert done.returncode == 0, done.stderr
    assert "'tensorflow' is not installed" in done.stdout
    assert "pip install 'skimgclf[tensorflow-cpu]'" in done.stdout
    # The other way out, on a machine that has JAX or torch instead (benchmarks/run_gpu.sh).
    assert "set KERAS_BACKEND to 'jax' or 'torch'" in done.stdout


def test_without_a_backend_the_command_line_says_it_in_one_line(small_layout, tmp_path):
    layout = small_layout[0]
    done = python(BLOCK_TENSORFLOW + "from skimgclf.cli import main\nsys.exit(main())",
                  "train", str(layout.train_csv), "--images", str(layout.train_dir),
                  "--model-dir", str(tmp_path / "model"))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("skimgclf: error: skimgclf's networks need Keras")
    assert "pip install 'skimgclf[tensorflow-cpu]'" in lines[-1]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize(("backend", "name"), [("jax", "JAX"), ("torch", "PyTorch")])
def test_a_gpu_the_backend_does_not_see_is_an_error_on_every_backend(monkeypatch, backend, name):
    # torch would quietly train on the CPU, and JAX fail naming its "platforms"; the GPUs each
    # backend sees are read by visible_gpus, stood in for here where neither is installed.
    monkeypatch.setattr(_backend.keras.backend, "backend", lambda: backend)
    monkeypatch.setattr(_backend, "visible_gpus", lambda: ["NVIDIA H200"])
    with _backend.keras_session("gpu:0"):
        pass
    with pytest.raises(ValueError, match=rf"device='gpu:1', but {name} sees 1 GPU; set device="):
        with _backend.keras_session("gpu:1"):
            pass
