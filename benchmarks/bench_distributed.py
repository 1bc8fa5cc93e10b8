"""A small grid search run serially, in joblib's worker processes and on a local Dask cluster.

The same ``GridSearchCV`` of ``CNNClassifier`` on Fashion-MNIST arrays, three ways:

1. serial (``n_jobs=None``);
2. ``n_jobs=2`` with joblib's default process backend (loky);
3. ``n_jobs=-1`` under ``joblib.parallel_config(backend="dask", scatter=[X, y])`` on a
   ``LocalCluster`` of two one-thread worker processes, the cluster's start timed apart.

Every way must give the same cross-validation scores, to the last bit (the search raises
otherwise). Run ``python benchmarks/bench_distributed.py`` on a quiet machine; it prints a table
and rewrites its section of ``docs/benchmarks.md`` and its table in ``docs/scaling.md``.
"""

import argparse
import os
import platform
import time

from _doc import DOC, cpu_model, markers, write_section  # noqa: E402  (beside this script)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import joblib  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from dask import __version__ as dask_version  # noqa: E402
from dask.distributed import Client, LocalCluster  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

from skimgclf import CNNClassifier  # noqa: E402
from skimgclf.datasets import load_fashion_mnist_sample  # noqa: E402

START, END = markers("distributed")
SCALING = DOC.with_name("scaling.md")
NETWORK = {"filters": (16,), "dense_units": 32, "random_state": 0}
GRID = {"learning_rate": [0.001, 0.003], "dropout": [0.0, 0.25]}


def machine_facts():
    """Cores, CPU model and versions, as one sentence."""
    model = cpu_model()
    return (f"{os.cpu_count()} cores, {model}; Python {platform.python_version()}, Keras "
            f"{keras.__version__}, Dask {dask_version}, joblib {joblib.__version__}")


def load():
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def search(x, y, epochs, cv, **params):
    """Fit the grid search; return its wall time and its per-split scores."""
    start = time.perf_counter()
    fitted = GridSearchCV(CNNClassifier(**NETWORK, epochs=epochs), GRID, cv=cv, refit=False,
                          scoring="neg_log_loss", **params).fit(x, y)
    seconds = time.perf_counter() - start
    scores = np.array([fitted.cv_results_[f"split{i}_test_score"] for i in range(cv)])
    return seconds, scores


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=1000, help="training images")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per fit")
    parser.add_argument("--cv", type=int, default=3, help="cross-validation folds")
    args = parser.parse_args()
    (x, y), _ = load_fashion_mnist_sample()
    x, y = x[:args.n_images] / np.float32(255), y[:args.n_images]
    n_fits = int(np.prod([len(values) for values in GRID.values()])) * args.cv
    load_before = load()

    rows = []
    seconds, expected = search(x, y, args.epochs, args.cv)
    rows.append(("serial", seconds, "–"))
    seconds, scores = search(x, y, args.epochs, args.cv, n_jobs=2)
    np.testing.assert_array_equal(scores, expected)
    rows.append(("joblib processes (loky), `n_jobs=2`", seconds, "–"))
    start = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        started = time.perf_counter() - start
        with joblib.parallel_config(backend="dask", scatter=[x, y]):
            seconds, scores = search(x, y, args.epochs, args.cv, n_jobs=-1)
    np.testing.assert_array_equal(scores, expected)
    rows.append(("Dask `LocalCluster`, 2 workers × 1 thread", seconds, f"{started:.1f}"))

    serial = rows[0][1]
    table = ["| how | search s | speed-up | cluster start s |", "|---|---:|---:|---:|"]
    table += [f"| {name} | {seconds:.1f} | {serial / seconds:.2f}× | {start_s} |"
              for name, seconds, start_s in rows]
    section = "\n".join([
        START,
        "## Distributed grid search (`benchmarks/bench_distributed.py`)",
        "",
        f"Machine: {machine_facts()}. Load average (1, 5, 15 min) before: {load_before}; "
        f"after: {load()} (a load above 2 means other jobs shared the 2 cores and the times "
        "are noisy). One run each.",
        "",
        f"`GridSearchCV` of `CNNClassifier(filters=(16,), dense_units=32, epochs="
        f"{args.epochs})` over {len(GRID['learning_rate'])} learning rates × "
        f"{len(GRID['dropout'])} dropouts, cv={args.cv}: {n_fits} fits on {len(x):,} "
        "Fashion-MNIST images held as arrays. The search time includes each worker process's "
        "first import of TensorFlow; the Dask cluster's own start is timed apart. All three "
        "gave the same cross-validation log losses, bit for bit.",
        "",
        *table,
        END,
    ])
    print("\n".join(table))
    write_section("distributed", section)
    start, end = markers("measured", prefix="scaling")
    write_section("measured", "\n".join([
        start,
        f"| how ({n_fits} fits, load average {load_before} before) | search s | speed-up "
        "| cluster start s |",
        *table[1:],
        end,
    ]), doc=SCALING, prefix="scaling")


if __name__ == "__main__":
    main()
