"""The whole Fashion-MNIST job, skimgclf's command line against the hand-written tutorial.

Both start from the competition layout (70,000 PNGs, written once from
``../shared/data/fashion-mnist.npz`` into ``--workdir``) and end with a submission CSV, which is
scored against the true test labels:

- **tutorial**: ``benchmarks/tutorial_fashion.py``, the tutorial's own code ported to Keras 3
  (load loop, ``to_categorical``, ``train_test_split``, Sequential network, 10 epochs, predict);
- **skimgclf**: ``skimgclf train`` (stratified 20 % holdout, default CNNClassifier, 10 epochs,
  report and saved model) then ``skimgclf predict`` (with the sample submission's order).

Each contender runs in a fresh process, taking turns over ``--repeats`` rounds; wall time per
stage, total, peak resident memory (of the process, from ``wait4``) and test accuracy are
reported, medians over the rounds. skimgclf's stages are read from the time its progress
lines appear: start-up until "loading", load until "training on", training until the last
epoch line, then scoring the holdout, the report and the saved model.

Run ``python benchmarks/bench_end_to_end.py`` (about 10 minutes a round on 2 cores); it prints
a table and rewrites its section of ``docs/benchmarks.md`` unless given ``--no-doc``.
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _doc import write_section  # noqa: E402  (beside this script)
from bench_training import machine_facts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FASHION = ROOT.parent / "shared" / "data" / "fashion-mnist.npz"
HERE = Path(__file__).resolve().parent
SKIMGCLF = [sys.executable, "-m", "skimgclf"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/skimgclf-bench-e2e"),
                        help="where the competition layout and outputs go (default %(default)s)")
    parser.add_argument("--data", type=Path, default=FASHION,
                        help="Fashion-MNIST .npz (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--only", choices=("tutorial", "skimgclf"))
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="CNNClassifier setting for skimgclf train (as its --set)")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    if not args.data.exists():
        sys.exit(f"bench_end_to_end: {args.data} not found; it needs the full Fashion-MNIST "
                 "(x_train, y_train, x_test, y_test in an .npz): give it with --data")
    layout, y_test = write_layout(args.data, args.workdir)
    machine = machine_line()
    load_before = os.getloadavg()
    runs = {"tutorial": [], "skimgclf": []}
    for round_ in range(args.repeats):
        order = ["tutorial", "skimgclf"] if round_ % 2 == 0 else ["skimgclf", "tutorial"]
        for name in order:
            if args.only and name != args.only:
                continue
            run = (run_tutorial if name == "tutorial" else run_skimgclf)(layout, args.set)
            run["accuracy"] = score(run.pop("submission"), y_test)
            runs[name].append(run)
            print(f"round {round_ + 1} {name}: {json.dumps(run)}", flush=True)
    load_after = os.getloadavg()
    section = report(runs, machine, load_before, load_after, args)
    print(section)
    if not args.no_doc:
        write_section("end-to-end", section)


def write_layout(npz, workdir):
    """Write the competition layout once; later runs reuse it when it is complete."""
    with np.load(npz) as data:
        x_train, y_train = data["x_train"], data["y_train"]
        x_test, y_test = data["x_test"], data["y_test"]
    layout = workdir / "data"
    done = layout / "complete"
    if not done.exists():
        from skimgclf.datasets import export_competition_layout

        print(f"writing 70,000 PNGs to {layout}", flush=True)
        export_competition_layout(x_train, y_train, layout, x_test=x_test)
        done.write_text("written by bench_end_to_end.py\n")
    return layout, y_test


def run_tutorial(layout, settings):
    del settings  # the tutorial has its fixed code
    out, wall, rss = timed([sys.executable, str(HERE / "tutorial_fashion.py"), str(layout)])
    stages = json.loads(out[-1][1])
    return {"stages": stages, "total": wall, "peak_rss_mib": rss,
            "submission": layout / "tutorial_submission.csv"}


def run_skimgclf(layout, settings):
    model_dir = layout.parent / "skimgclf-model"
    submission = layout.parent / "skimgclf-submission.csv"
    sets = [item for setting in settings for item in ("--set", setting)]
    train_out, train_wall, train_rss = timed([
        *SKIMGCLF, "train", str(layout / "train.csv"), "--images", str(layout / "train"),
        "--model-dir", str(model_dir), "--suffix", ".png", "--path-column", "id", *sets])
    marks = {"loading": None, "training on": None, "epoch": None}
    for at, line in train_out:
        if line.startswith("loading ") and marks["loading"] is None:
            marks["loading"] = at
        elif line.startswith("training on "):
            marks["training on"] = at
        elif re.match(r"\d+/\d+ - ", line):  # Keras's one line per epoch
            marks["epoch"] = at
    predict_out, predict_wall, predict_rss = timed([
        *SKIMGCLF, "predict", str(layout / "test.csv"), "--images", str(layout / "test"),
        "--model-dir", str(model_dir), "--output", str(submission),
        "--sample-submission", str(layout / "sample_submission.csv")])
    stages = {"start-up": marks["loading"],
              "load train": marks["training on"] - marks["loading"],
              "train": marks["epoch"] - marks["training on"],
              "holdout score, report, save": train_wall - marks["epoch"],
              "predict (start-up, load test, predict, submission)": predict_wall}
    return {"stages": stages, "total": train_wall + predict_wall,
            "peak_rss_mib": max(train_rss, predict_rss), "submission": submission}


def timed(command):
    """Run ``command``; return its output lines with their times, its wall time, peak RSS."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=environment, cwd=ROOT)
    lines = []
    for line in process.stdout:
        lines.append((time.perf_counter() - start, line.rstrip("\n")))
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        tail = "\n".join(line for _, line in lines[-20:])
        sys.exit(f"bench_end_to_end: {' '.join(command)} failed ({process.returncode}):\n{tail}")
    return lines, wall, usage.ru_maxrss / 1024


def score(submission, y_test):
    predicted = pd.read_csv(submission)["label"].to_numpy()
    return float(np.mean(predicted == y_test))


def machine_line():
    import keras
    import tensorflow as tf

    from skimgclf._precision import resolve_precision

    policy, reason = resolve_precision("auto")
    return (f"{machine_facts()}; skimgclf trains in {policy} ({reason}), the tutorial in "
            f"float32; Python {platform.python_version()}, TensorFlow {tf.__version__}, "
            f"Keras {keras.__version__}")


def report(runs, machine, load_before, load_after, args):
    def median(values):
        return statistics.median(values)

    lines = ["<!-- bench:end-to-end:start -->",
             "## End to end: the Fashion-MNIST job (`benchmarks/bench_end_to_end.py`)", "",
             f"Machine: {machine}. Load average (1, 5, 15 min) before: "
             f"{', '.join(f'{v:.2f}' for v in load_before)}; after: "
             f"{', '.join(f'{v:.2f}' for v in load_after)}. "
             f"{args.repeats} round(s), the contenders taking turns; medians."
             + (f" skimgclf settings: {' '.join(args.set)}." if args.set else ""), ""]
    for name, label in (("tutorial", "tutorial code (Keras 3 port)"),
                        ("skimgclf", "skimgclf train + predict")):
        if not runs[name]:
            continue
        lines += [f"**{label}**", "", "| stage | seconds |", "|---|---:|"]
        for stage in runs[name][0]["stages"]:
            lines.append(f"| {stage} | {median([r['stages'][stage] for r in runs[name]]):.1f} |")
        totals = [r["total"] for r in runs[name]]
        accuracies = ", ".join(f"{r['accuracy']:.4f}" for r in runs[name])
        lines += [f"| **total** | **{median(totals):.1f}** (range {min(totals):.1f}–"
                  f"{max(totals):.1f}) |", "",
                  f"Peak memory {median([r['peak_rss_mib'] for r in runs[name]]):.0f} MiB; "
                  f"test accuracy {median([r['accuracy'] for r in runs[name]]):.4f} "
                  f"({accuracies}).", ""]
    if runs["tutorial"] and runs["skimgclf"]:
        ratio = median([r["total"] for r in runs["skimgclf"]]) / median(
            [r["total"] for r in runs["tutorial"]])
        lines.append(f"skimgclf's total ÷ the tutorial's: **{ratio:.2f}×** (goal ≤ 0.8×; "
                     "total ≤ 240 s).")
    lines.append("<!-- bench:end-to-end:end -->")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
