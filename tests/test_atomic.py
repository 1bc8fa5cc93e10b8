import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from skimgclf import _atomic
from skimgclf._atomic import open_atomic
from skimgclf._folders import MANIFEST, replacing_folder


def test_open_atomic_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "submission.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), open_atomic(target, "w") as handle:
        handle.write("half of the new")
        raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"]


def test_open_atomic_replaces_on_success(tmp_path):
    target = tmp_path / "out.bin"
    with open_atomic(target) as handle:
        handle.write(b"new")
    assert target.read_bytes() == b"new"
    assert len(list(tmp_path.iterdir())) == 1


def test_replacing_folder_swaps_whole_or_not_at_all(tmp_path):
    folder = tmp_path / "model"
    with replacing_folder(folder, "model") as stage:
        (stage / "estimator.json").write_text("old")
    with pytest.raises(KeyboardInterrupt), replacing_folder(folder, "model") as stage:
        (stage / "estimator.json").write_text("new")
        raise KeyboardInterrupt
    assert (folder / "estimator.json").read_text() == "old"
    with replacing_folder(folder, "model") as stage:
        (stage / "estimator.json").write_text("new")
    assert (folder / "estimator.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
def test_replacing_a_folder_with_or_without_exchanging_rename(tmp_path, monkeypatch, exchange):
    if not exchange:
        # As on systems without renameat2(RENAME_EXCHANGE).
        monkeypatch.setattr(_atomic, "_exchange", lambda first, second: False)
    folder = tmp_path / "model"
    for content in ("old", "new"):
        with replacing_folder(folder, "model") as stage:
            (stage / "estimator.json").write_text(content)
    assert (folder / "estimator.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_replaced_folder_gets_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with replacing_folder(tmp_path / "model", "model") as stage:
            (stage / "estimator.json").write_text("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o755


# --- killed mid-write ---------------------------------------------------------------------
#
# A real subprocess writes a submission, a model folder or a report, and is SIGKILLed just
# before its first rename and just after each: afterwards the target must be the old complete
# output or the new complete one. The pause comes from a wrapper script around the command,
# so the library carries no test hook.

KILL_HOOK = '''\
"""Run a script or ``-m module``, freezing before or after its Nth rename (KILL_AT=after:N).

KILL_AT=count counts the renames of a whole run instead and writes the count to KILL_FLAG.
"""
import atexit
import os
import runpy
import sys
import time
from pathlib import Path

import skimgclf._atomic as atomic

point = os.environ["KILL_AT"]
flag = Path(os.environ["KILL_FLAG"])
renames = 0


def pause():
    flag.write_text(point)
    time.sleep(600)


def watched(rename):
    def call(*args, **kwargs):
        global renames
        renames += 1
        if point == f"before:{renames}":
            pause()
        result = rename(*args, **kwargs)
        if point == f"after:{renames}":
            pause()
        return result
    return call


os.replace = watched(os.replace)
atomic._exchange = watched(atomic._exchange)
if point == "count":
    atexit.register(lambda: flag.write_text(str(renames)))
if sys.argv[1] == "-m":
    sys.argv = sys.argv[2:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
'''


def _run_to(tmp_path, point, argv):
    """Run ``argv`` under the hook; return the process, frozen at ``point`` or finished."""
    hook = tmp_path / "kill_hook.py"
    hook.write_text(KILL_HOOK)
    flag = tmp_path / f"flag-{point.replace(':', '-')}"
    env = {**os.environ, "KILL_AT": point, "KILL_FLAG": str(flag)}
    process = subprocess.Popen([sys.executable, str(hook), *map(str, argv)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not flag.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return process, flag


def kill_at_every_rename(tmp_path, argv, reset, check):
    """Kill ``argv`` before its first rename and after each; ``check(point)`` what it left.

    Just before a later rename the outputs are as just after the one before it. ``reset()``
    puts the old output back before each run. Returns the number of renames.
    """
    reset()
    process, flag = _run_to(tmp_path, "count", argv)
    assert process.wait(timeout=300) == 0, process.stderr.read()
    renames = int(flag.read_text())
    assert renames >= 1
    for point in ["before:1", *(f"after:{n}" for n in range(1, renames + 1))]:
        reset()
        process, flag = _run_to(tmp_path, point, argv)
        assert flag.exists(), f"never reached {point}: {process.stderr.read()}"
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
        process.stderr.close()
        check(point)
    return renames


def _visible(folder):
    # Hidden names are the temporaries of a killed run: ignored by every reader.
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


@pytest.fixture(scope="module")
def cli_model(small_layout, tmp_path_factory):
    """A tiny model trained by ``skimgclf train``; returns (layout, model folder)."""
    from skimgclf.cli import main

    layout = small_layout[0]
    model_dir = tmp_path_factory.mktemp("cli_model") / "model"
    status = main(["train", str(layout.train_csv), "--images", str(layout.train_dir),
                   "--model-dir", str(model_dir), "--suffix", ".png", "--epochs", "1",
                   "--set", "filters=4", "--set", "dense_units=8", "--set", "random_state=0"])
    assert status == 0
    return layout, model_dir


@pytest.mark.slow
def test_killed_predict_leaves_the_old_or_the_new_submission(cli_model, tmp_path):
    from skimgclf.cli import main

    layout, model_dir = cli_model
    out = tmp_path / "out"
    out.mkdir()
    submission = out / "submission.csv"
    old = "id,label\n1,0\n"
    argv = ["-m", "skimgclf", "predict", layout.test_csv, "--images", layout.test_dir,
            "--model-dir", model_dir, "--output", submission]
    seen = set()

    def check(point):
        assert _visible(out) == ["submission.csv"], point
        text = submission.read_text()
        assert text in (old, new), point
        seen.add(text)

    main([str(a) for a in argv[2:]])
    new = submission.read_text()
    assert new.count("\n") == 101
    kill_at_every_rename(tmp_path, argv, lambda: submission.write_text(old), check)
    assert seen == {old, new}
    # The temporaries of the killed runs stay hidden and do not stop the next run.
    assert len(list(out.iterdir())) > 1
    assert main([str(a) for a in argv[2:]]) == 0
    assert submission.read_text() == new


@pytest.mark.slow
def test_killed_save_model_leaves_the_old_or_the_new_model(cli_model, tmp_path):
    from skimgclf.persistence import load_model, save_model

    _, model_dir = cli_model
    saved = tmp_path / "saved"
    old = load_model(model_dir)
    script = tmp_path / "resave.py"
    script.write_text("import sys\n"
                      "from skimgclf.persistence import load_model, save_model\n"
                      "model = load_model(sys.argv[1]).set_params(cnn__batch_size=7)\n"
                      "save_model(model, sys.argv[1])\n")
    seen = set()

    def reset():
        save_model(old, saved)

    def check(point):
        assert _visible(saved) == ["estimator.json", "model.keras", MANIFEST], point
        seen.add(load_model(saved)["cnn"].batch_size)

    renames = kill_at_every_rename(tmp_path, [script, saved], reset, check)
    assert seen == {old["cnn"].batch_size, 7}, seen
    if sys.platform.startswith("linux"):
        # The manifest is renamed into the new folder, which then takes the old one's place in
        # one step, with the exchanging rename.
        assert renames == 2
    save_model(old, saved)
    assert load_model(saved)["cnn"].batch_size == old["cnn"].batch_size


def test_killed_report_leaves_the_old_or_the_new_report(tmp_path):
    from skimgclf.report import write_report

    report = tmp_path / "report"
    script = tmp_path / "report.py"
    script.write_text("import sys\n"
                      "from skimgclf.report import write_report\n"
                      "write_report(sys.argv[1], history={'loss': [2.0, 1.0, 0.5]},\n"
                      "             y_true=[0, 1, 1, 0], y_pred=[0, 1, 0, 0], title='new')\n")

    def reset():
        shutil.rmtree(report, ignore_errors=True)
        write_report(report, history={"loss": [3.0, 2.0]}, title="old")

    def contents():
        # The page's generation time aside, which may change between runs, and so the
        # manifest's checksum of it.
        listed = json.loads((report / MANIFEST).read_text())["entries"]
        assert sorted(listed) == [name for name in _visible(report) if name != MANIFEST]
        return {name: re.sub(rb"\d{4}-\d\d-\d\d \d\d:\d\d UTC", b"",
                             (report / name).read_bytes()) for name in listed}

    reset()
    old = contents()
    subprocess.run([sys.executable, script, report], check=True)
    new = contents()
    assert old.keys() < new.keys()
    seen = []

    def check(point):
        left = contents()
        assert left in (old, new), point
        seen.append(left == new)

    kill_at_every_rename(tmp_path, [script, report], reset, check)
    assert set(seen) == {False, True}
