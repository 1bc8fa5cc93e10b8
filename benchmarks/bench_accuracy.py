"""Accuracy within a time budget: the documented stronger CNNClassifier on the full datasets.

Issue 5 asks for ≥ 0.935 test accuracy on Fashion-MNIST and ≥ 0.993 on MNIST, each within
10 minutes of training on 2 CPU cores. The configuration, ``STRONG`` below, is the tutorial's
network grown into two blocks of two batch-normalised convolutions, each block pooled, trained
with a cosine learning-rate schedule. It trains on all 60,000 training images (from
``../shared/data``, scaled to [0, 1]) and is scored on the 10,000 test images.

Reported per dataset and fit: wall time of ``fit``, seconds per epoch (median over the epochs
after the first, which traces the step function), processor cores used (CPU time / wall time),
the final test accuracy, and the training time at which the test accuracy first reached the
goal (scored after every epoch, as DAWNBench times training "to a target accuracy"; the
scoring's own time is left out of every time reported), beside the goal.

Run ``python benchmarks/bench_accuracy.py`` (``--dataset fashion``, ``mnist`` or ``both``;
``--repeats`` fits per dataset, seeds 0, 1, …); it prints a table and rewrites its section of
``docs/benchmarks.md`` unless given ``--no-doc``. A fit takes 10 to 20 minutes on a 2-core
machine; other jobs on the same cores stretch every time reported.
"""

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from _doc import markers, write_section  # noqa: E402  (beside this script)
from bench_training import machine_facts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
START, END = markers("accuracy")
BUDGET_S = 600

# dataset → (file under DATA, name in the table, goal test accuracy, epochs). MNIST needs
# fewer epochs than Fashion-MNIST; the cosine schedule spans the epochs given.
DATASETS = {
    "fashion": ("fashion-mnist.npz", "Fashion-MNIST", 0.935, 12),
    "mnist": ("mnist.npz", "MNIST", 0.993, 5),
}

# The documented configuration, less its epochs; docs/benchmarks.md and docs/tutorial.md show
# it as code.
STRONG = {
    "filters": ((32, 32), (64, 64)),
    "dropout": 0.1,
    "dense_dropout": 0.3,
    "batch_norm": True,
    "lr_schedule": "cosine",
    "batch_size": 64,
}


def configuration_code(dataset, random_state=0):
    """The configuration for ``dataset`` as a copy-pasteable ``CNNClassifier(...)`` call."""
    settings = {**STRONG, "epochs": DATASETS[dataset][3]}
    listed = ", ".join(f"{name}={value!r}" for name, value in settings.items())
    return f"CNNClassifier({listed}, random_state={random_state})"


def load(dataset):
    """Training and test images of ``dataset``, scaled to [0, 1], with their labels."""
    import numpy as np

    with np.load(DATA / DATASETS[dataset][0]) as data:
        return ((data["x_train"] / np.float32(255), data["y_train"]),
                (data["x_test"] / np.float32(255), data["y_test"]))


def fit_once(dataset, seed):
    """Fit ``STRONG`` on the full ``dataset``; return its measurements."""
    import keras
    import numpy as np

    from skimgclf import CNNClassifier

    (x_train, y_train), (x_test, y_test) = load(dataset)
    walls, curve = [], []
    scoring = {"wall": 0.0, "cpu": 0.0}

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            walls.append(time.perf_counter() - self.start)
            # Scored outside the timing: the curve must not slow down what it measures.
            wall, cpu = time.perf_counter(), time.process_time()
            # The network's own input rank: CNNClassifier adds the channel axis to (n, h, w).
            images = x_test.reshape((-1, *self.model.input_shape[1:]))
            proba = self.model.predict(images, batch_size=512, verbose=0)
            curve.append((sum(walls), float(np.mean(np.argmax(proba, axis=1) == y_test))))
            scoring["wall"] += time.perf_counter() - wall
            scoring["cpu"] += time.process_time() - cpu

    clf = CNNClassifier(**STRONG, epochs=DATASETS[dataset][3], random_state=seed,
                        callbacks=[EpochTimer()])
    start, cpu_start = time.perf_counter(), time.process_time()
    clf.fit(x_train, y_train)
    fit_s = time.perf_counter() - start - scoring["wall"]
    cpu_s = time.process_time() - cpu_start - scoring["cpu"]
    # The last point of the curve scored the fitted network: no second pass over the test set.
    return {"fit_s": fit_s, "cores": cpu_s / fit_s, "epoch_s": statistics.median(walls[1:]),
            "accuracy": curve[-1][1], "curve": curve}


def render(runs, load_before, load_after):
    """The doc section: machine, configuration, one row per fit."""
    import keras
    import numpy as np

    table = [
        "| dataset | epochs | seed | fit wall time (s) | s/epoch (median) | cores used "
        "| test accuracy | goal first reached | goal | met |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    curves = ["Test accuracy after each epoch (training seconds so far):", ""]
    for dataset, seed, run in runs:
        _, name, goal, epochs = DATASETS[dataset]
        reached = next(((epoch, s) for epoch, (s, accuracy) in enumerate(run["curve"], 1)
                        if accuracy >= goal), None)
        met = reached is not None and reached[1] <= BUDGET_S
        table.append(
            f"| {name} | {epochs} | {seed} | {run['fit_s']:.0f} | {run['epoch_s']:.1f} | "
            f"{run['cores']:.2f} | {run['accuracy']:.4f} | "
            f"{f'epoch {reached[0]}, {reached[1]:.0f} s' if reached else 'not reached'} | "
            f"≥ {goal} in ≤ {BUDGET_S} s | {'yes' if met else 'no'} |")
        points = ", ".join(f"{accuracy:.4f} ({s:.0f})" for s, accuracy in run["curve"])
        curves.append(f"- {name}, seed {seed}: {points}")
    return "\n".join([
        START,
        "## Accuracy within 10 minutes (`benchmarks/bench_accuracy.py`)",
        "",
        f"Machine: {machine_facts()}; Python {platform.python_version()}, NumPy "
        f"{np.__version__}, Keras {keras.__version__}. Load average (1, 5, 15 min) before: "
        f"{load_before}; after: {load_after} (a load above the 2 cores means other jobs shared "
        "them and stretched the times).",
        "",
        "The configuration, trained on all 60,000 training images scaled to [0, 1] and scored "
        "on the 10,000 test images:",
        "",
        "```python",
        "from skimgclf import CNNClassifier",
        "",
        *(f"clf = {configuration_code(dataset)}  # {DATASETS[dataset][1]}"
          for dataset in dict.fromkeys(dataset for dataset, _, _ in runs)),
        "```",
        "",
        "Two blocks of two 3×3 convolutions (32 then 64 filters, \"valid\" padding), each "
        "convolution batch-normalised before its ReLU and each block followed by a 2×2 max pool "
        "and dropout 0.1; then Dense(128) – Dropout(0.3) – softmax (the tutorial's dropout, "
        "0.25 and 0.5, learnt slower in a trial over so few epochs). Adam starts "
        "at 1e-3 and the learning rate falls along half a cosine over the "
        "epochs given. It has fewer multiply-adds per image than the tutorial "
        "network (19.7 against 24.0 MFLOP forward: the second block runs on 12×12 maps), but "
        "batch normalisation adds memory-bound work of its own.",
        "",
        *table,
        "",
        *curves,
        "",
        END,
    ])


def _load():
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=[*DATASETS, "both"], default="both",
                        help="which dataset to train on")
    parser.add_argument("--repeats", type=int, default=1, help="fits per dataset (seeds 0, 1, …)")
    parser.add_argument("--no-doc", action="store_true",
                        help="print the table without rewriting docs/benchmarks.md")
    args = parser.parse_args()
    datasets = list(DATASETS) if args.dataset == "both" else [args.dataset]
    missing = [DATA / DATASETS[d][0] for d in datasets if not (DATA / DATASETS[d][0]).exists()]
    if missing:
        print(f"bench_accuracy skipped: {', '.join(map(str, missing))} not found (the full "
              "datasets are not part of the repository).")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    load_before = _load()
    runs = []
    for dataset in datasets:
        for seed in range(args.repeats):
            runs.append((dataset, seed, fit_once(dataset, seed)))
            print(f"{dataset} seed {seed}: {runs[-1][2]}", file=sys.stderr)
    section = render(runs, load_before, _load())
    print(section)
    if not args.no_doc:
        write_section("accuracy", section)


if __name__ == "__main__":
    main()
