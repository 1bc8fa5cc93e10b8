"""Likely mislabelled images: find_label_issues against labels flipped on purpose.

A seeded random subset of the Fashion-MNIST training images (``../shared/data``) has a known
share of its labels (5 % by default) moved to another class drawn at random; each image keeps
its label with the rest. ``find_label_issues`` then ranks the images, over ``--cv`` stratified
folds, for two models: the tutorial network (``CNNClassifier`` with its defaults, a few
epochs) on the pixels, and a fast alternative, a logistic regression on 50 principal
components of the pixels. Reported per model: the time taken (``cv`` fits), the out-of-fold
accuracy against the true labels, the precision and recall of the flagged set, and of the
top k of the ranking, for k of half, once and twice the number of flipped labels. Chance
precision is the share flipped.

Run ``python benchmarks/bench_label_issues.py`` (``--n-images``, ``--noise``, ``--cv``,
``--epochs``, ``--models``); it prints a table and rewrites its section of
``docs/benchmarks.md`` unless given ``--no-doc``. The defaults take a few minutes on 2 cores.
"""

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from _doc import write_section  # noqa: E402  (beside this script)
from bench_training import machine_facts  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402

from skimgclf import CNNClassifier, find_label_issues  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist.npz"


def models(epochs):
    flatten = FunctionTransformer(lambda x: x.reshape(len(x), -1))
    return {
        f"tutorial network, {epochs} epoch{'s' if epochs != 1 else ''}":
            CNNClassifier(epochs=epochs, random_state=0),
        "PCA(50) + logistic regression": make_pipeline(
            flatten, PCA(50, random_state=0), LogisticRegression(max_iter=1000)),
    }


def flip_labels(y, noise, rng):
    """``y`` with a share ``noise`` of its labels moved to another class; and those rows."""
    rows = rng.choice(len(y), round(noise * len(y)), replace=False)
    noisy = y.copy()
    noisy[rows] = (y[rows] + rng.integers(1, 10, len(rows))) % 10
    return noisy, rows


def scores(picked, flipped):
    hits = np.isin(picked, flipped).sum()
    return hits / max(len(picked), 1), hits / len(flipped)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=4000)
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--models", default="all", help="'all' or a word of a model's name")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    facts, load_before = machine_facts(), os.getloadavg()
    print(facts, "load", load_before, flush=True)
    with np.load(DATA) as data:
        x_all, y_all = data["x_train"], data["y_train"]
    rng = np.random.default_rng(0)
    subset = rng.choice(len(y_all), args.n_images, replace=False)
    x = (x_all[subset] / np.float32(255)).astype(np.float32)[..., None]
    y_true = y_all[subset]
    y, flipped = flip_labels(y_true, args.noise, rng)
    results = []
    for name, model in models(args.epochs).items():
        if args.models != "all" and args.models not in name:
            continue
        start = time.perf_counter()
        issues = find_label_issues(model, x, y, cv=args.cv, verbose=True)
        seconds = time.perf_counter() - start
        flagged = issues.loc[issues["is_label_issue"], "row"].to_numpy()
        ranked = issues["row"].to_numpy()
        # The out-of-fold accuracy: where the suggestion is the true label of the image.
        accuracy = np.mean(issues["suggested_label"].to_numpy() == y_true[ranked])
        row = {"name": name, "seconds": seconds, "accuracy": accuracy,
               "flagged": len(flagged), "set": scores(flagged, flipped),
               "top": {k: scores(ranked[:k], flipped)
                       for k in (len(flipped) // 2, len(flipped), 2 * len(flipped))}}
        results.append(row)
        print(row, "load", os.getloadavg(), flush=True)
    section = report(results, args, len(flipped), facts, load_before, os.getloadavg())
    print(section)
    if not args.no_doc:
        write_section("label-issues", section)


def report(results, args, n_flipped, facts, load_before, load_after):
    ks = list(results[0]["top"])
    lines = [
        "<!-- bench:label-issues:start -->",
        "## Likely mislabelled images (`benchmarks/bench_label_issues.py`)", "",
        f"Machine: {facts}. Load average before: "
        f"{', '.join(f'{v:.2f}' for v in load_before)}; after: "
        f"{', '.join(f'{v:.2f}' for v in load_after)}. {args.n_images:,} Fashion-MNIST "
        f"training images drawn at random (seed 0), the labels of {n_flipped} of them "
        f"({args.noise:.0%}) moved to another class at random; `find_label_issues(model, x, "
        f"y, cv={args.cv})`, ranked by self-confidence. Precision / recall against the "
        f"flipped images; chance precision is {args.noise:.2f}. The share of all images whose "
        f"suggested label is their true one shows how good the out-of-fold model is.", "",
        "| model | seconds | suggested = true label | flagged | flagged: precision / recall | "
        + " | ".join(f"top {k}: precision / recall" for k in ks) + " |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(ks),
    ]
    for r in results:
        cells = [f"{p:.2f} / {q:.2f}" for p, q in (r["set"], *r["top"].values())]
        lines.append(f"| {r['name']} | {r['seconds']:.0f} | {r['accuracy']:.3f} | "
                     f"{r['flagged']} | " + " | ".join(cells) + " |")
    lines.append("<!-- bench:label-issues:end -->")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
