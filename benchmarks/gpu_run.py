"""skimgclf on an accelerator, on whichever Keras backend is installed: checks, searches, speed.

What ``benchmarks/run_gpu.sh`` runs once it has installed the carried wheels and picked
``KERAS_BACKEND``. In order, each step timed and written to the results file as soon as it ends
(a run stopped early keeps what it did):

1. Smoke checks on the device Keras chooses (the GPU when one is seen): a seeded fit and its
   test accuracy, a second fit with the same seed (repeatable?), a save/load round trip
   (identical probabilities?).
2. ``cross_val_score`` of the tutorial pipeline, ``ImageFolderLoader`` + ``CNNClassifier``, on
   Fashion-MNIST images written as PNGs.
3. A 2×2 ``GridSearchCV`` over the same pipeline, the loader caching its decodes.
4. Training and prediction throughput of the default network: on the device at batch 64 and
   512, under Keras's ``mixed_bfloat16`` and ``mixed_float16`` policies, and on the CPU.

Run ``python benchmarks/gpu_run.py --data FASHION_NPZ --out RESULTS.md`` (``--quick`` for a
short run); the npz holds uint8 ``x_train``, ``y_train``, ``x_test``, ``y_test`` (the full
Fashion-MNIST, or the 10,000-image cut that ``benchmarks/prepare_gpu_wheels.sh`` writes).
Without ``--data`` the package's own sample (4,000 training images) stands in.
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from importlib.util import find_spec
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _doc import cpu_model, markers, write_section  # noqa: E402  (beside this script)
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

from skimgclf import CNNClassifier, ImageFolderLoader  # noqa: E402
from skimgclf._backend import keras, visible_gpus  # noqa: E402
from skimgclf._precision import cpu_flags  # noqa: E402
from skimgclf.datasets import export_competition_layout, load_fashion_mnist_sample  # noqa: E402
from skimgclf.persistence import load_model, save_model  # noqa: E402

# (images for the smoke fits, for cross-validation and the grid search, for throughput; epochs)
SIZES = {"full": (4000, 10_000, 10_000, 3), "quick": (1000, 2000, 1000, 1)}
GRID = {"cnn__filters": [(32, 64), (64, 128)], "cnn__learning_rate": [1e-3, 3e-3]}
# (device, Keras dtype policy, batch size): Keras's choice of device first, the CPU last.
THROUGHPUT = [(None, "float32", 64), (None, "float32", 512), (None, "mixed_bfloat16", 512),
              (None, "mixed_float16", 512), (None, "auto", 512), ("cpu", "float32", 64)]
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def classifier(policy="float32", **params):
    """A CNNClassifier whose network computes under the Keras dtype policy ``policy``."""
    return CNNClassifier(precision=policy, **params)


def facts():
    backend = keras.backend.backend()
    module = sys.modules.get(backend)
    flags = cpu_flags()
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        smi = ""
    return [f"nvidia-smi: {smi or 'nothing (no NVIDIA GPU or driver)'}.",
            f"Backend: Keras {keras.__version__} on {backend} "
            f"{getattr(module, '__version__', '?')}; Python {platform.python_version()}; "
            f"TensorFlow {'absent' if find_spec('tensorflow') is None else 'installed'}.",
            f"GPUs seen by {backend}: {', '.join(visible_gpus()) or 'none'}.",
            f"CPU: {os.cpu_count()} cores, {cpu_model()}; flags: "
            f"{', '.join(f for f in CPU_FLAGS if f in flags) or 'none of ' + ', '.join(CPU_FLAGS)}"
            f"; load average at start {', '.join(f'{v:.2f}' for v in os.getloadavg())}."]


def placement(clf):
    """Where the network's first weight lives, as the backend names it."""
    return str(clf.model_.weights[0].value.device)


def smoke(data, n, epochs):
    x, y, x_test, y_test = data["x_train"][:n], data["y_train"][:n], data["x_test"], data["y_test"]
    rows = []
    start = time.perf_counter()
    first = CNNClassifier(epochs=epochs, random_state=0).fit(x, y)
    proba = first.predict_proba(x_test)
    rows.append(("fit, seeded", f"{epochs} epoch(s) on {n:,} images; test accuracy "
                 f"{first.score(x_test, y_test):.4f}; weights on {placement(first)}",
                 time.perf_counter() - start))
    start = time.perf_counter()
    again = CNNClassifier(epochs=epochs, random_state=0).fit(x, y).predict_proba(x_test)
    diff = float(np.abs(again - proba).max())
    same = float(np.mean(again.argmax(1) == proba.argmax(1)))
    rows.append(("same seed again", ("identical probabilities" if diff == 0 else
                                     f"max probability difference {diff:.2g}")
                 + f"; {same:.2%} same labels", time.perf_counter() - start))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="skimgclf-gpu-run-") as folder:
        save_model(first, Path(folder) / "model")
        loaded = load_model(Path(folder) / "model").predict_proba(x_test)
    diff = float(np.abs(loaded - proba).max())
    rows.append(("save, load", "identical probabilities" if diff == 0 else
                 f"max probability difference {diff:.2g}", time.perf_counter() - start))
    return table(["check", "result", "seconds"], [(a, b, f"{s:.1f}") for a, b, s in rows])


def pipeline(layout, epochs, cache=None):
    loader = ImageFolderLoader(layout.train_dir, path_column="id", suffix=".png", cache=cache)
    return Pipeline([("load", loader), ("cnn", CNNClassifier(epochs=epochs, random_state=0))])


def cross_validation(layout, epochs):
    frame = pd.read_csv(layout.train_csv)
    start = time.perf_counter()
    scores = cross_val_score(pipeline(layout, epochs), frame[["id"]], frame["label"], cv=3)
    seconds = time.perf_counter() - start
    return table(["images", "folds", "epochs", "accuracy (mean ± sd)", "seconds"],
                 [(f"{len(frame):,}", 3, epochs, f"{scores.mean():.4f} ± {scores.std():.4f}",
                   f"{seconds:.1f}")])


def grid_search(layout, epochs, cache):
    frame = pd.read_csv(layout.train_csv)
    search = GridSearchCV(pipeline(layout, epochs, cache), GRID, cv=2)
    start = time.perf_counter()
    search.fit(frame[["id"]], frame["label"])
    seconds = time.perf_counter() - start
    rows = [(", ".join(f"{k.split('__')[1]}={v}" for k, v in params.items()),
             f"{score:.4f}", f"{fit_time:.1f}")
            for params, score, fit_time in zip(search.cv_results_["params"],
                                               search.cv_results_["mean_test_score"],
                                               search.cv_results_["mean_fit_time"], strict=True)]
    return (table(["candidate", "mean accuracy (cv=2)", "fit seconds (mean)"], rows) +
            f"\n\n{len(frame):,} images, {epochs} epoch(s); best {search.best_params_}; "
            f"whole search with the refit {seconds:.1f} s.")


def throughput(data, n, epochs):
    x, y, x_test, y_test = data["x_train"][:n], data["y_train"][:n], data["x_test"], data["y_test"]
    rows = []
    for device, policy, batch in THROUGHPUT:
        clf = classifier(policy, epochs=1, batch_size=batch, device=device, random_state=0)
        # The first epoch traces and compiles; the next ones run at the steady rate.
        clf.fit(x, y)
        start = time.perf_counter()
        clf.partial_fit(x, y, epochs=epochs)
        train = epochs * n / (time.perf_counter() - start)
        clf.predict_proba(x_test)
        start = time.perf_counter()
        accuracy = clf.score(x_test, y_test)
        predict = len(x_test) / (time.perf_counter() - start)
        chosen = policy if policy != "auto" else f"auto: {clf.precision_}"
        rows.append([device or "Keras's choice", chosen, batch, placement(clf), train, predict,
                     f"{accuracy:.4f}"])
        print(f"  throughput {rows[-1]}", flush=True)
    cpu = rows[-1][4]
    return table(["device", "policy", "batch", "weights on", "train images/s", "× CPU row",
                  "predict images/s", f"test accuracy after {epochs + 1} epochs"],
                 [(d, p, b, w, f"{t:,.0f}", f"{t / cpu:.2f}", f"{q:,.0f}", a)
                  for d, p, b, w, t, q, a in rows])


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def load_data(path, n_train):
    if path is None:
        (x, y), (x_test, y_test) = load_fashion_mnist_sample()
        source = "the package's own Fashion-MNIST sample"
    else:
        with np.load(path) as npz:
            x, y, x_test, y_test = (npz[k] for k in ("x_train", "y_train", "x_test", "y_test"))
        source = os.path.basename(path)
    return ({"x_train": x[:n_train], "y_train": y[:n_train], "x_test": x_test[:2000],
             "y_test": y_test[:2000]},
            f"{source}: {min(n_train, len(x)):,} training images, {min(2000, len(x_test)):,} "
            "test images")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="npz with uint8 x_train, y_train, x_test, y_test")
    parser.add_argument("--out", default="gpu-results.md", help="the results file to write")
    parser.add_argument("--quick", action="store_true", help="fewer images and epochs")
    parser.add_argument("--doc", metavar="NAME", help="also write the results into "
                        "docs/benchmarks.md, between the markers of section bench:NAME")
    args = parser.parse_args()
    n_smoke, n_search, n_speed, epochs = SIZES["quick" if args.quick else "full"]
    data, source = load_data(args.data, max(n_smoke, n_search, n_speed))
    began = time.perf_counter()
    sections = [f"### GPU run on {keras.backend.backend()}, "
                f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
                f"{' (--quick)' if args.quick else ''}", "", *facts(), f"Data: {source}.", ""]
    failed = []

    def write():
        Path(args.out).write_text("\n".join(sections) + "\n")

    def step(title, run):
        print(f"{title} ...", flush=True)
        start = time.perf_counter()
        try:
            body = run()
        except Exception as exc:  # noqa: BLE001  (one broken step must not lose the others)
            traceback.print_exc()
            failed.append(title)
            body = f"FAILED: {type(exc).__name__}: {exc}"
        sections.extend([f"#### {title} ({time.perf_counter() - start:.0f} s)", "", body, ""])
        write()
        print(sections[-2], flush=True)

    step("Smoke checks", lambda: smoke(data, n_smoke, epochs))
    with tempfile.TemporaryDirectory(prefix="skimgclf-gpu-run-") as work:
        layout = export_competition_layout(data["x_train"][:n_search],
                                           data["y_train"][:n_search], Path(work) / "data")
        step("cross_val_score, ImageFolderLoader + CNNClassifier",
             lambda: cross_validation(layout, epochs))
        step("GridSearchCV, 2×2 grid", lambda: grid_search(layout, epochs, Path(work) / "cache"))
    step("Throughput of the default network", lambda: throughput(data, n_speed, epochs))
    sections.append(f"Whole run: {time.perf_counter() - began:.0f} s; load average at the end "
                    f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}"
                    f"{'; FAILED: ' + ', '.join(failed) if failed else ''}.")
    write()
    print("\n".join(sections))
    if args.doc:
        start, end = markers(args.doc)
        write_section(args.doc, "\n".join([start, *sections, end]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
