"""Checkpoints of ``skimgclf train``: Ctrl-C keeps the last epoch, ``--resume`` finishes the run."""

import contextlib
import io
import json
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from skimgclf._folders import MANIFEST
from skimgclf.cli import main
from skimgclf.loader import ImageFolderLoader

EPOCHS = 12
TINY = ["--suffix", ".png", "--epochs", str(EPOCHS), "--set", "filters=4",
        "--set", "dense_units=8", "--set", "random_state=0"]


def train_argv(layout, model_dir, *extra):
    return ["train", str(layout.train_csv), "--images", str(layout.train_dir),
            "--model-dir", str(model_dir), *TINY, *extra]


def run(argv):
    """Run the CLI in-process; return (exit status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, err.getvalue()


@pytest.fixture(scope="module")
def interrupted(small_layout, tmp_path_factory):
    """A ``skimgclf train`` process sent SIGINT (Ctrl-C) as soon as its first checkpoint exists.

    Returns ``(layout, model_dir, exit status, stderr)``.
    """
    layout = small_layout[0]
    model_dir = tmp_path_factory.mktemp("interrupted") / "model"
    state = model_dir / "checkpoint" / "run.json"
    # A shell without job control starts background jobs with SIGINT ignored, and an ignored
    # signal stays ignored across exec: Python then never raises KeyboardInterrupt. The child
    # gets the default back, as a terminal's Ctrl-C would find it, wherever pytest was started.
    process = subprocess.Popen([sys.executable, "-m", "skimgclf", *train_argv(layout, model_dir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    start = time.monotonic()
    while not state.exists() and process.poll() is None and time.monotonic() < start + 300:
        time.sleep(0.02)
    seen, waited = state.exists(), time.monotonic() - start
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    if process.returncode != 130:
        pytest.fail(f"the run was not interrupted (exit {process.returncode}); checkpoint seen "
                    f"{seen} after {waited:.1f} s; its stderr:\n{err}")
    return layout, model_dir, process.returncode, err


def test_ctrl_c_keeps_the_last_epoch_and_says_how_to_resume(interrupted):
    layout, model_dir, status, err = interrupted
    assert status == 130, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("skimgclf train: interrupted after epoch ")
    assert "--resume" in last and str(model_dir / "checkpoint") in last
    # No model yet: only the checkpoint, recorded in the folder's manifest.
    assert sorted(p.name for p in model_dir.iterdir()) == ["checkpoint", MANIFEST]
    assert json.loads((model_dir / MANIFEST).read_text())["entries"] == {
        "checkpoint": {"type": "folder"}}
    state = json.loads((model_dir / "checkpoint" / "run.json").read_text())
    assert 1 <= state["epochs_done"] < EPOCHS
    assert len(saved_history(model_dir / "checkpoint")["val_accuracy"]) == state["epochs_done"]
    status, err = run(["predict", str(layout.test_csv), "--images", str(layout.test_dir),
                       "--model-dir", str(model_dir), "--output", str(model_dir / "x.csv")])
    assert status == 1
    assert "interrupted training; finish it with skimgclf train --resume" in err


def test_resume_refuses_other_options_or_no_checkpoint(interrupted, tmp_path):
    layout, model_dir, _, _ = interrupted
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    status, err = run(train_argv(layout, copy, "--resume", "--set", "dropout=0.5"))
    assert status == 1
    assert "belongs to a run with other params" in err.strip().splitlines()[-1]
    status, err = run(train_argv(layout, tmp_path / "new", "--resume"))
    assert status == 1
    assert "nothing to resume" in err.strip().splitlines()[-1]
    assert not (tmp_path / "new").exists()


def saved_history(folder):
    return json.loads((folder / "estimator.json").read_text())["fitted"]["history"]


def test_a_changed_checkpoint_is_refused(interrupted, tmp_path):
    layout, model_dir, _, _ = interrupted
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    state = copy / "checkpoint" / "run.json"
    state.write_text(state.read_text().replace('"epochs_done": ', '"epochs_done": 1'))
    status, err = run(train_argv(layout, copy, "--resume"))
    assert status == 1
    assert "changed since skimgclf wrote them: 'checkpoint'" in err.strip().splitlines()[-1]


def test_resume_finishes_the_run_and_leaves_no_checkpoint(interrupted, tmp_path):
    layout, model_dir, _, _ = interrupted
    done = json.loads((model_dir / "checkpoint" / "run.json").read_text())["epochs_done"]
    before = saved_history(model_dir / "checkpoint")
    status, err = run(train_argv(layout, model_dir, "--resume"))
    assert status == 0, err
    assert f"resuming after epoch {done} of {EPOCHS}" in err
    assert not (model_dir / "checkpoint").exists()
    assert sorted(p.name for p in model_dir.parent.iterdir()) == ["model"]
    history = saved_history(model_dir)
    assert {len(values) for values in history.values()} == {EPOCHS}
    # The history continues the interrupted one, holdout scores included.
    assert history["loss"][:done] == before["loss"]
    assert history["val_accuracy"][:done] == before["val_accuracy"]
    output = tmp_path / "submission.csv"
    status, err = run(["predict", str(layout.test_csv), "--images", str(layout.test_dir),
                       "--model-dir", str(model_dir), "--output", str(output)])
    assert status == 0, err
    assert len(pd.read_csv(output)) == 100


def test_ctrl_c_before_the_first_epoch_has_nothing_to_resume(small_layout, tmp_path,
                                                             monkeypatch):
    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(ImageFolderLoader, "fit_transform", interrupt)
    status, err = run(train_argv(small_layout[0], tmp_path / "model"))
    assert status == 130
    assert err.strip().splitlines()[-1] == ("skimgclf train: interrupted before the first "
                                            "epoch ended; nothing to resume")
