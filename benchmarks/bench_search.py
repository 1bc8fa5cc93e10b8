"""A 2×2 grid search with 3 folds over the loader + CNN pipeline: decodes counted, cache timed.

``GridSearchCV(Pipeline([ImageFolderLoader, CNNClassifier]), 2×2 grid, cv=3)`` on the shipped
Fashion-MNIST sample written in the competition layout: 4 candidates × 3 folds transform the
training and the scored fold, and the refit transforms everything, 25 transforms in all. With
a ``cache`` folder each file should be decoded once per search; without one, every transform
decodes its files again. The decodes are counted on the loader's ``skimgclf.loader`` log
records (``n_decoded``), and both searches are timed, taking turns over ``--repeats`` rounds.

Run ``python benchmarks/bench_search.py`` (``--n-images``, ``--epochs``, ``--repeats``); it
prints a table and rewrites its section of ``docs/benchmarks.md`` unless given ``--no-doc``.
It needs only the package's own sample.
"""

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd  # noqa: E402
from _doc import cpu_model, write_section  # noqa: E402  (beside this script)
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

from skimgclf import CNNClassifier, ImageFolderLoader  # noqa: E402
from skimgclf.datasets import export_competition_layout, load_fashion_mnist_sample  # noqa: E402

GRID = {"cnn__filters": [(16,), (16, 32)], "cnn__dropout": [0.25, 0.5]}


class DecodeCounter(logging.Handler):
    """Adds up the loader's per-transform counts."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.transforms = self.decoded = self.from_cache = self.images = 0

    def emit(self, record):
        self.transforms += 1
        self.images += record.n_images
        self.decoded += record.n_decoded
        self.from_cache += record.n_from_cache


def search(layout, cache, epochs):
    loader = ImageFolderLoader(layout.train_dir, path_column="id", suffix=".png", cache=cache)
    cnn = CNNClassifier(epochs=epochs, batch_size=64, random_state=0)
    model = GridSearchCV(Pipeline([("load", loader), ("cnn", cnn)]), GRID, cv=3)
    counter = DecodeCounter()
    logger = logging.getLogger("skimgclf.loader")
    logger.addHandler(counter)
    logger.setLevel(logging.INFO)
    table = pd.read_csv(layout.train_csv)
    start = time.perf_counter()
    try:
        model.fit(table[["id"]], table["label"])
    finally:
        logger.removeHandler(counter)
    return {"seconds": time.perf_counter() - start, "transforms": counter.transforms,
            "images": counter.images, "decoded": counter.decoded,
            "from_cache": counter.from_cache, "best": model.best_params_,
            "score": model.best_score_}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    (x_train, y_train), _ = load_fashion_mnist_sample()
    load_before = os.getloadavg()
    rows = {"cache": [], "no cache": []}
    with tempfile.TemporaryDirectory(prefix="skimgclf-bench-search-") as work:
        layout = export_competition_layout(x_train[:args.n_images], y_train[:args.n_images],
                                           Path(work) / "data")
        for round_ in range(args.repeats):
            order = ["cache", "no cache"] if round_ % 2 == 0 else ["no cache", "cache"]
            for name in order:
                # A fresh cache folder each round: the first transform of the search decodes.
                cache = Path(work) / f"cache-{round_}" if name == "cache" else None
                result = search(layout, cache, args.epochs)
                rows[name].append(result)
                print(f"round {round_ + 1} {name}: {result}", flush=True)
    section = report(rows, args, load_before, os.getloadavg())
    print(section)
    if not args.no_doc:
        write_section("search", section)


def report(rows, args, load_before, load_after):
    model = cpu_model()
    n = args.n_images
    lines = ["<!-- bench:search:start -->",
             "## Grid search: decodes and cache (`benchmarks/bench_search.py`)", "",
             f"Machine: {os.cpu_count()} cores, {model}. Load average before: "
             f"{', '.join(f'{v:.2f}' for v in load_before)}; after: "
             f"{', '.join(f'{v:.2f}' for v in load_after)}. {n:,} images of the shipped "
             f"sample as PNGs; grid {GRID}, cv=3, {args.epochs} epochs, batch 64; "
             f"{args.repeats} round(s), taking turns; median times.", "",
             "| search | transforms | images loaded | files decoded | per file | "
             "read from cache | seconds (median) | best score |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, results in rows.items():
        first = results[0]
        seconds = statistics.median(r["seconds"] for r in results)
        lines.append(f"| {name} | {first['transforms']} | {first['images']:,} | "
                     f"{first['decoded']:,} | {first['decoded'] / n:.1f} | "
                     f"{first['from_cache']:,} | {seconds:.1f} | {first['score']:.4f} |")
    cached = statistics.median(r["seconds"] for r in rows["cache"])
    plain = statistics.median(r["seconds"] for r in rows["no cache"])
    same = all(a["score"] == b["score"]
               for a, b in zip(rows["cache"], rows["no cache"], strict=True))
    lines += ["", f"With the cache each file is decoded {rows['cache'][0]['decoded'] / n:.1f} "
              f"time(s) per search (goal: once); the search runs {plain / cached:.2f}× as fast "
              f"as without it ({plain - cached:.1f} s saved); scores "
              f"{'identical' if same else 'differ'} (same seed).",
              "<!-- bench:search:end -->"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
