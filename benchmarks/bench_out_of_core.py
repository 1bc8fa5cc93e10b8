"""Out of core: 700,000 images loaded to a memory-mapped cache and trained on, within 2 GiB.

A synthetic 10× Fashion-MNIST (the 70,000 real images, each written 10 times, shifted by up to
2 pixels, as PNGs in the competition layout under ``--workdir``) is loaded by
``ImageFolderLoader(cache=DIR, dtype="uint8", rescale=None)``, which returns a ``numpy.memmap``
of the cache, and ``CNNClassifier`` trains on that map a batch at a time. The same job is run
in memory (the loader's default float32 output, ~2.2 GB) for comparison. Each contender runs in
a fresh process; peak resident memory comes from ``wait4``, so it counts the pages of the map
that training touched.

Run ``python benchmarks/bench_out_of_core.py`` (``--copies`` for fewer images, ``--epochs``,
``--network default`` for the tutorial network instead of a small one); it prints a table and
rewrites its section of ``docs/scaling.md`` unless given ``--no-doc``.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from _doc import cpu_model, write_section  # beside this script

ROOT = Path(__file__).resolve().parents[1]
FASHION = ROOT.parent / "shared" / "data" / "fashion-mnist.npz"
SCALING = ROOT / "docs" / "scaling.md"
SMALL = {"filters": [8], "dense_units": 32, "dense_dropout": 0.0}

CHILD = r"""
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import pandas as pd
from skimgclf import CNNClassifier, ImageFolderLoader
layout, cache, mode, epochs, network, fit = sys.argv[1:7]
table = pd.read_csv(os.path.join(layout, "train.csv"))
params = {"image_dir": os.path.join(layout, "train"), "path_column": "id", "suffix": ".png",
          "n_jobs": -1}
if mode == "out-of-core":
    params.update(dtype="uint8", rescale=None, cache=cache)
loader = ImageFolderLoader(**params)
result = {}
start = time.perf_counter()
X = loader.transform(table)
result["load_s"] = time.perf_counter() - start
result["type"] = type(X).__name__ + " " + str(X.dtype)
if fit == "no":
    print(json.dumps(result))
    sys.exit()
clf = CNNClassifier(epochs=int(epochs), batch_size=256, random_state=0, **json.loads(network))
start = time.perf_counter()
clf.fit(X, table["label"].to_numpy())
result["fit_s"] = time.perf_counter() - start
result["images_per_s"] = len(table) * int(epochs) / result["fit_s"]
result["train_accuracy_last_epoch"] = clf.history_["accuracy"][-1]
print(json.dumps(result))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/skimgclf-bench-ooc"))
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--network", choices=("small", "default"), default="small")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    if not FASHION.exists():
        sys.exit(f"bench_out_of_core: {FASHION} not found; it needs the full Fashion-MNIST")
    layout = write_layout(args.workdir / f"data-{args.copies}x", args.copies)
    network = json.dumps(SMALL if args.network == "small" else {})
    results = {}
    for mode in ("out-of-core", "in memory"):
        cache = args.workdir / f"cache-{args.copies}x"
        shutil.rmtree(cache, ignore_errors=True)  # the first run starts cold
        results[mode] = run(layout, cache, mode, args.epochs, network)
        print(mode, results[mode], flush=True)
    section = report(results, args, pd.read_csv(layout / "train.csv").shape[0])
    print(section)
    if not args.no_doc:
        write_section("out-of-core", section, doc=SCALING, prefix="scaling")


def write_layout(layout, copies):
    """The real images, ``copies`` times, each copy shifted; written once, in parallel."""
    if (layout / "complete").exists():
        return layout
    with np.load(FASHION) as data:
        images = np.concatenate([data["x_train"], data["x_test"]])
        labels = np.concatenate([data["y_train"], data["y_test"]])
    (layout / "train").mkdir(parents=True, exist_ok=True)
    shifts = np.random.default_rng(0).integers(-2, 3, size=(copies, 2))
    shifts[0] = 0  # the first copy is the real set
    print(f"writing {copies * len(images):,} PNGs to {layout}", flush=True)
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_write_copy, [layout / "train"] * copies, range(copies),
                      [images] * copies, [tuple(s) for s in shifts]))
    ids = np.arange(1, copies * len(images) + 1)
    pd.DataFrame({"id": ids, "label": np.tile(labels, copies)}).to_csv(layout / "train.csv",
                                                                        index=False)
    (layout / "complete").write_text("written by bench_out_of_core.py\n")
    return layout


def _write_copy(folder, copy, images, shift):
    from PIL import Image

    shifted = np.roll(images, shift, axis=(1, 2))
    first = copy * len(images) + 1
    for offset, image in enumerate(shifted):
        Image.fromarray(image).save(folder / f"{first + offset}.png")


def run(layout, cache, mode, epochs, network):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    results = []
    # The first run fills the cache and trains; the second only loads, from the warm cache.
    for attempt, fit in (("first", "yes"), ("again, load only", "no")):
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", CHILD, str(layout), str(cache), mode,
                                    str(epochs), network, fit], stdout=subprocess.PIPE,
                                   text=True, env=environment)
        out = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status):
            sys.exit(f"bench_out_of_core: the {mode} run failed")
        result = json.loads(out.strip().splitlines()[-1])
        result.update(attempt=attempt, wall_s=time.perf_counter() - start,
                      peak_rss_mib=usage.ru_maxrss / 1024)
        results.append(result)
    return results


def report(results, args, n_images):
    model = cpu_model()
    float_gb = n_images * 28 * 28 * 4 / 1e9
    lines = ["<!-- scaling:out-of-core:start -->",
             "### Measured: 10× Fashion-MNIST out of core (`benchmarks/bench_out_of_core.py`)",
             "", f"Machine: {os.cpu_count()} cores, {model}, "
             f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; "
             f"load average {', '.join(f'{v:.1f}' for v in os.getloadavg())} at the end. "
             f"{n_images:,} PNGs (the real 70,000, {args.copies} times, shifted up to 2 "
             f"pixels): {float_gb:.2f} GB as float32, {float_gb / 4:.2f} GB as uint8. "
             f"{args.epochs} epoch(s) of the {args.network} network "
             f"({'Conv(8) – Dense(32)' if args.network == 'small' else 'the tutorial’s'}), "
             "batch 256, loader n_jobs=-1; out of core with a cache folder (filled by the "
             "first run), in memory without one. Each run is a fresh process; peak memory is "
             "its peak resident set, including the touched pages of the map (TensorFlow and "
             "the libraries alone take about 650 MiB).", "",
             "| path | run | load s | X | fit s | training images/s | peak memory MiB |",
             "|---|---|---:|---|---:|---:|---:|"]
    for mode, runs in results.items():
        for r in runs:
            fit = (f"{r['fit_s']:.1f} | {r['images_per_s']:,.0f}" if "fit_s" in r
                   else "– | –")
            lines.append(f"| {mode} | {r['attempt']} | {r['load_s']:.1f} | {r['type']} | "
                         f"{fit} | {r['peak_rss_mib']:,.0f} |")
    ooc = results["out-of-core"][0]["images_per_s"]
    mem = results["in memory"][0]["images_per_s"]
    lines += ["", f"Training throughput out of core ÷ in memory: {ooc / mem:.2f}.",
              "<!-- scaling:out-of-core:end -->"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
