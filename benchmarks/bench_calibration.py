"""Calibration: is CNNClassifier's confidence right, and what makes it right.

On a seeded Fashion-MNIST subset from ``../shared/data`` (4,000 training images, 2,000 test
images, pixels scaled to [0, 1]), a network is trained with ``validation_split=0.2``, and its
probabilities on the test images are scored by expected calibration error (15 bins,
:func:`skimgclf.calibration.expected_calibration_error`), log loss and accuracy, beside the
ways to calibrate it below. Two networks: the tutorial's for 4 epochs, and the same without
dropout for 15 epochs, which learns its training images by heart and grows overconfident
(the cross-validated wrappers, three more trainings each, only for the first):

- ``CalibratedClassifierCV(FrozenEstimator(clf))``, fitted on the classifier's own 800
  held-out images, no extra training: temperature scaling (scikit-learn 1.8 and newer; one
  number T dividing the log-probabilities, Guo et al. 2017), sigmoid and isotonic;
- ``CalibratedClassifierCV(CNNClassifier(...), cv=3)``, sigmoid and isotonic: three fits on
  two thirds of all 4,000 images each, their calibrated probabilities averaged.

Run ``python benchmarks/bench_calibration.py`` (``--seeds`` seeds, 3 by default); it prints
the tables and rewrites its section of ``docs/benchmarks.md`` unless
given ``--no-doc``, and the table in ``docs/report.md``. About 35 minutes on 2 busy cores.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _doc import markers, write_section  # noqa: E402  (beside this script)
from bench_training import machine_facts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "fashion-mnist.npz"
START, END = markers("calibration")
# docs/report.md shows the table too, where it tells how to calibrate.
REPORT_DOC = ROOT / "docs" / "report.md"
N_TRAIN, N_TEST, SPLIT = 4000, 2000, 0.2
# Name in the tables → (CNNClassifier parameters, whether to run the cross-validated wrappers).
CONFIGS = {
    "the tutorial network, 4 epochs": ({"epochs": 4}, True),
    "without dropout, 15 epochs": ({"epochs": 15, "dropout": 0.0, "dense_dropout": 0.0}, False),
}
METHODS = ("uncalibrated", "FrozenEstimator + temperature, on the holdout",
           "FrozenEstimator + sigmoid, on the holdout",
           "FrozenEstimator + isotonic, on the holdout",
           "CalibratedClassifierCV(cv=3), sigmoid", "CalibratedClassifierCV(cv=3), isotonic")


def subset(seed=0):
    """The same stratified-by-chance subset for every seed of the network."""
    with np.load(DATA) as data:
        rng = np.random.default_rng(seed)
        train = rng.choice(len(data["y_train"]), N_TRAIN, replace=False)
        test = rng.choice(len(data["y_test"]), N_TEST, replace=False)
        return ((data["x_train"][train] / np.float32(255)).astype(np.float32),
                data["y_train"][train],
                (data["x_test"][test] / np.float32(255)).astype(np.float32),
                data["y_test"][test])


def run_seed(seed, params, with_cv, data):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator
    from sklearn.metrics import accuracy_score, log_loss

    from skimgclf import CNNClassifier
    from skimgclf.calibration import expected_calibration_error
    from skimgclf.classifier import validation_rows

    x_train, y_train, x_test, y_test = data

    def scores(proba, classes, seconds):
        return {"ece": expected_calibration_error(y_test, proba, labels=classes),
                "log_loss": log_loss(y_test, proba, labels=classes),
                "accuracy": accuracy_score(y_test, classes[proba.argmax(axis=1)]),
                "seconds": seconds}

    results = {}
    start = time.perf_counter()
    clf = CNNClassifier(**params, validation_split=SPLIT, random_state=seed)
    clf.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - start
    results[METHODS[0]] = scores(clf.predict_proba(x_test), clf.classes_, fit_seconds)
    # The very images the classifier held out, unseen in training.
    _, held_out = validation_rows(y_train, SPLIT, random_state=seed)
    x_val, y_val = x_train[held_out], y_train[held_out]
    for name, method in zip(METHODS[1:4], ("temperature", "sigmoid", "isotonic"), strict=True):
        start = time.perf_counter()
        calibrated = CalibratedClassifierCV(FrozenEstimator(clf), method=method)
        calibrated.fit(x_val, y_val)
        results[name] = scores(calibrated.predict_proba(x_test), calibrated.classes_,
                               fit_seconds + time.perf_counter() - start)
        if method == "temperature":
            calibrator = calibrated.calibrated_classifiers_[0].calibrators[0]
            results[name]["temperature"] = 1 / calibrator.beta_
    for name, method in zip(METHODS[4:] if with_cv else (), ("sigmoid", "isotonic"),
                            strict=False):
        start = time.perf_counter()
        calibrated = CalibratedClassifierCV(CNNClassifier(**params, random_state=seed),
                                            method=method, cv=3)
        calibrated.fit(x_train, y_train)
        results[name] = scores(calibrated.predict_proba(x_test), calibrated.classes_,
                               time.perf_counter() - start)
    return results


def render(results, load_before, load_after):
    """The section of docs/benchmarks.md and the tables for docs/report.md."""
    tables, notes = [], []
    for config, runs in results.items():
        table = _table(runs)
        tables += [f"**{config[0].upper() + config[1:]}**", "", *table, ""]
        temperatures = ", ".join(f"{run[METHODS[1]]['temperature']:.3f}" for run in runs)
        better = sum(run[METHODS[1]]["ece"] < run[METHODS[0]]["ece"] for run in runs)
        notes.append(f"{config[0].upper() + config[1:]}: fitted temperatures {temperatures}; "
                     f"temperature scaling lowered the ECE in {better} of {len(runs)} seeds.")
    seeds = len(next(iter(results.values())))
    start, end = markers("calibration", "report")
    return "\n".join([start, "", *tables, end]), "\n".join([
        START,
        "## Calibration",
        "",
        f"`python benchmarks/bench_calibration.py`: networks trained on {N_TRAIN:,} "
        f"Fashion-MNIST training images ({1 - SPLIT:.0%} of them; the other {SPLIT:.0%} held "
        f"out by `validation_split`), scored on {N_TEST:,} test images; {seeds} seeds, mean "
        f"(lowest–highest). ECE: expected calibration error over 15 bins of confidence. "
        f"{machine_facts()}; load average {load_before} before, {load_after} after.",
        "",
        *tables,
        "\n\n".join(notes),
        "",
        END,
    ])


def _table(runs):
    def cell(method, key, digits):
        values = [run[method][key] for run in runs]
        mean = statistics.fmean(values)
        if len(values) == 1:
            return f"{mean:.{digits}f}"
        return f"{mean:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"

    rows = ["| method | ECE | log loss | accuracy | training + calibration (s) |",
            "|---|---:|---:|---:|---:|"]
    for method in METHODS:
        if method in runs[0]:
            rows.append(f"| {method} | {cell(method, 'ece', 4)} | "
                        f"{cell(method, 'log_loss', 4)} | {cell(method, 'accuracy', 4)} | "
                        f"{cell(method, 'seconds', 0)} |")
    return rows


def _load():
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="network seeds 0, 1, …")
    parser.add_argument("--no-doc", action="store_true",
                        help="print the table without rewriting docs/benchmarks.md")
    args = parser.parse_args()
    if not DATA.exists():
        print(f"bench_calibration skipped: {DATA} not found (the full datasets are not part "
              "of the repository).")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(machine_facts(), file=sys.stderr)
    load_before = _load()
    data = subset()
    results = {}
    for config, (params, with_cv) in CONFIGS.items():
        runs = results[config] = []
        for seed in range(args.seeds):
            runs.append(run_seed(seed, params, with_cv, data))
            print(f"{config}, seed {seed}: " + "; ".join(
                f"{m}: ECE {r['ece']:.4f}" for m, r in runs[-1].items()), file=sys.stderr)
    table, section = render(results, load_before, _load())
    print(section)
    if not args.no_doc:
        write_section("calibration", section)
        write_section("calibration", table, doc=REPORT_DOC, prefix="report")


if __name__ == "__main__":
    main()
