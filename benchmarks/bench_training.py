"""Training speed: CNNClassifier.fit against raw keras.Model.fit, and this CPU's ceiling.

The network is the default one, the Keras tutorial's (Conv32 – Conv64 – MaxPool – Dropout –
Dense128 – Dropout – softmax, Adam 1e-3), written out as the tutorial's ``Sequential`` for the
raw Keras side; both train on the same Fashion-MNIST images (``../shared/data``) with
CNNClassifier's default batch size, and raw Keras also with the tutorial's 32 and with 128.
Every contender runs in a fresh Python process, because TensorFlow's thread settings hold for
the life of a process; the contenders take turns over ``--repeats`` rounds.

CNNClassifier and raw Keras also take turns in one process, an epoch each per turn, so that
both meet the same host speeds: this machine's epochs jump between two speed levels, which
separate processes meet at random.

Reported per contender: seconds per epoch (median over the epochs after the first, which
traces the step function), processor cores used while training (CPU time / wall time), the
achieved GFLOP/s (the network's multiply-adds counted per image, training ≈ 3× forward) and
its fraction of a measured float32 matrix-multiply ceiling (2048×2048, NumPy and TensorFlow,
same threads), and the test accuracy on the 10,000 test images.

Run ``python benchmarks/bench_training.py`` (``--n-images``, ``--epochs``, ``--repeats`` and
``--turns`` to make it shorter or longer, ``--only`` for some of the contenders); it prints a
table and rewrites its section of ``docs/benchmarks.md`` unless given ``--no-doc``.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _doc import cpu_model, markers, write_section  # noqa: E402  (beside this script)

from skimgclf._precision import cpu_flags

ROOT = Path(__file__).resolve().parents[1]
FASHION = ROOT.parent / "shared" / "data" / "fashion-mnist.npz"
START, END = markers("training")
IMAGE_SHAPE, N_CLASSES = (28, 28, 1), 10

# name → (what it is, worker settings). "runner" is "keras" (the tutorial's Sequential and
# Model.fit) or "skimgclf" (CNNClassifier.fit with its defaults); "threads" is (intra, inter)
# set through tf.config.threading before TensorFlow starts; "env" is added to the environment.
CONTENDERS = {
    "keras": ("raw keras.Model.fit, TensorFlow's default threads", {"runner": "keras"}),
    "skimgclf": ("CNNClassifier.fit, its defaults but precision='float32'",
                 {"runner": "skimgclf", "precision": "float32"}),
    "skimgclf-auto": ("CNNClassifier.fit, its defaults (precision='auto')",
                      {"runner": "skimgclf", "precision": "auto"}),
    "keras-1-1": ("raw Keras, intra 1 / inter 1", {"runner": "keras", "threads": [1, 1]}),
    "keras-2-1": ("raw Keras, intra 2 / inter 1", {"runner": "keras", "threads": [2, 1]}),
    "keras-1-2": ("raw Keras, intra 1 / inter 2", {"runner": "keras", "threads": [1, 2]}),
    "keras-2-2": ("raw Keras, intra 2 / inter 2", {"runner": "keras", "threads": [2, 2]}),
    "keras-env": ("raw Keras, TF_NUM_INTRAOP_THREADS=2 TF_NUM_INTEROP_THREADS=1 "
                  "OMP_NUM_THREADS=2",
                  {"runner": "keras", "env": {"TF_NUM_INTRAOP_THREADS": "2",
                                              "TF_NUM_INTEROP_THREADS": "1",
                                              "OMP_NUM_THREADS": "2"}}),
    "keras-no-onednn": ("raw Keras, TF_ENABLE_ONEDNN_OPTS=0 (Eigen kernels)",
                        {"runner": "keras", "env": {"TF_ENABLE_ONEDNN_OPTS": "0"}}),
    "keras-spe8": ("raw Keras, steps_per_execution=8",
                   {"runner": "keras", "steps_per_execution": 8}),
    "keras-xla": ("raw Keras, jit_compile=True (XLA)", {"runner": "keras", "jit_compile": True}),
    # Without avx512_bf16 or AMX, TensorFlow emulates bfloat16 several times slower; fewer images
    # keep its run short, and the float32 row "keras-small" trains on the same ones.
    "keras-small": ("raw Keras, float32, first 1,280 images", {"runner": "keras",
                                                               "max_images": 1280}),
    "keras-bf16": ("raw Keras, mixed_bfloat16 policy, first 1,280 images",
                   {"runner": "keras", "policy": "mixed_bfloat16", "max_images": 1280}),
    "keras-batch32": ("raw Keras, batch 32 (the tutorial's, Keras's default)",
                      {"runner": "keras", "batch_size": 32}),
    "keras-batch128": ("raw Keras, batch 128 (fewer, larger steps)",
                       {"runner": "keras", "batch_size": 128}),
}


def network_flops():
    """Floating-point operations of one forward pass of the default network on one image.

    A convolution costs 2·k·k·c_in·c_out per output pixel and a dense layer 2·in·out (one
    multiply and one add each); pooling, activations and dropout are left out (under 1 %).
    """
    height, width, channels = IMAGE_SHAPE
    flops = 0
    for filters in (32, 64):
        height, width = height - 2, width - 2
        flops += 2 * 3 * 3 * channels * filters * height * width
        channels = filters
    features = (height // 2) * (width // 2) * channels
    for units in (128, N_CLASSES):
        flops += 2 * features * units
        features = units
    return flops


def tutorial_network():
    """The Keras tutorial's network, as the tutorial writes it."""
    import keras

    return keras.Sequential([
        keras.Input(shape=IMAGE_SHAPE),
        keras.layers.Conv2D(32, (3, 3), activation="relu"),
        keras.layers.Conv2D(64, (3, 3), activation="relu"),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Dropout(0.25),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(N_CLASSES, activation="softmax"),
    ])


def work(settings):
    """Train one contender in this (fresh) process; return its measurements."""
    if settings.get("threads"):
        import tensorflow as tf

        intra, inter = settings["threads"]
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    import keras
    import numpy as np

    n = settings["n_images"]
    (x_train, y_train), (x_test, y_test) = fashion_images(n)
    if settings.get("policy"):
        keras.mixed_precision.set_global_policy(settings["policy"])

    walls, cpus = [], []
    batch_size = settings.get("batch_size", default_batch_size())
    start = time.perf_counter()
    if settings["runner"] == "skimgclf":
        from skimgclf import CNNClassifier

        clf = CNNClassifier(epochs=settings["epochs"], batch_size=batch_size, random_state=0,
                            precision=settings["precision"],
                            callbacks=[epoch_timer(walls, cpus)])
        clf.fit(x_train, y_train)
        losses = clf.history_["loss"]
        fit_time = time.perf_counter() - start
        accuracy = clf.score(x_test, y_test)
        threads = _thread_settings()
    else:
        keras.utils.set_random_seed(0)
        model = compiled_tutorial_network(settings)
        history = model.fit(x_train, y_train, batch_size=batch_size, epochs=settings["epochs"],
                            callbacks=[epoch_timer(walls, cpus)], verbose=0)
        losses = history.history["loss"]
        fit_time = time.perf_counter() - start
        proba = model.predict(x_test, batch_size=batch_size, verbose=0)
        accuracy = float(np.mean(np.argmax(proba, axis=1) == y_test))
        threads = _thread_settings()
    return {"n_images": n, "walls": walls, "cpus": cpus, "losses": [float(v) for v in losses],
            "fit_time": fit_time, "accuracy": accuracy, "threads": threads}


def interleaved(settings):
    """CNNClassifier.fit and raw Keras taking turns in this process, one epoch each per turn.

    Returns the epoch times (Keras callbacks) and the times of whole ``fit`` calls (input
    checks included) of each, the first turn, which traces the step functions, left out.
    """
    import keras

    from skimgclf import CNNClassifier

    (x_train, y_train), _ = fashion_images(settings["n_images"])
    batch_size = default_batch_size()
    epochs = {"skimgclf": [], "keras": []}
    calls = {"skimgclf": [], "keras": []}
    clf = CNNClassifier(epochs=1, batch_size=batch_size, warm_start=True, random_state=0,
                        precision="float32", callbacks=[epoch_timer(epochs["skimgclf"], [])])
    keras.utils.set_random_seed(0)
    model = compiled_tutorial_network({})
    keras_timer = epoch_timer(epochs["keras"], [])
    fits = {"skimgclf": lambda: clf.fit(x_train, y_train),
            "keras": lambda: model.fit(x_train, y_train, batch_size=batch_size, epochs=1,
                                       callbacks=[keras_timer], verbose=0)}
    for turn in range(settings["turns"] + 1):
        # Each goes first every other turn, so neither always meets the other's aftermath.
        for name in (("skimgclf", "keras") if turn % 2 else ("keras", "skimgclf")):
            start = time.perf_counter()
            fits[name]()
            calls[name].append(time.perf_counter() - start)
    return {name: {"epochs": epochs[name][1:], "calls": calls[name][1:]} for name in fits}


def precision_turns(settings):
    """CNNClassifier in float32 and in mixed_bfloat16 taking turns, one epoch each per turn.

    Returns each one's epoch times (the first turn, which traces, left out), test accuracy
    after all the turns, and what ``precision="auto"`` picks here and why.
    """
    import numpy as np

    from skimgclf import CNNClassifier
    from skimgclf._precision import resolve_precision

    auto = resolve_precision("auto")
    # Emulated, bfloat16 is about ten times slower: fewer images keep such a run short.
    n_images = settings["n_images"] if auto[0] == "mixed_bfloat16" else 1280
    (x_train, y_train), (x_test, y_test) = fashion_images(n_images)
    epochs = {"float32": [], "mixed_bfloat16": []}
    classifiers = {name: CNNClassifier(epochs=1, warm_start=True, random_state=0, precision=name,
                                       callbacks=[epoch_timer(walls, [])])
                   for name, walls in epochs.items()}
    for turn in range(settings["precision_turns"] + 1):
        for name in (("float32", "mixed_bfloat16") if turn % 2 else ("mixed_bfloat16", "float32")):
            classifiers[name].fit(x_train, y_train)
    return {"auto": auto, "n_images": n_images,
            **{name: {"epochs": epochs[name][1:],
                      "accuracy": float(np.mean(clf.predict(x_test) == y_test))}
               for name, clf in classifiers.items()}}


def fashion_images(n):
    """The first ``n`` Fashion-MNIST training images and all test images, (h, w, 1) in [0, 1]."""
    import numpy as np

    with np.load(FASHION) as data:
        return (((data["x_train"][:n] / np.float32(255))[..., np.newaxis],
                 data["y_train"][:n].astype("int64")),
                ((data["x_test"] / np.float32(255))[..., np.newaxis], data["y_test"]))


def compiled_tutorial_network(settings):
    """The tutorial's Sequential, compiled as the tutorial does, with ``settings``' options."""
    import keras

    model = tutorial_network()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=settings.get("steps_per_execution", 1),
                  jit_compile=settings.get("jit_compile", "auto"))
    return model


def epoch_timer(walls, cpus):
    """A Keras callback appending each epoch's wall and CPU seconds to ``walls`` and ``cpus``."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            walls.append(time.perf_counter() - self.start[0])
            cpus.append(time.process_time() - self.start[1])

    return EpochTimer()


def default_batch_size():
    """CNNClassifier's default batch size, which every contender uses unless it says."""
    from skimgclf import CNNClassifier

    return CNNClassifier().batch_size


def _thread_settings():
    import tensorflow as tf

    return [tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads()]


def matmul_ceiling(size=2048, repeats=10):
    """Best float32 GFLOP/s of a size×size matrix product, NumPy and TensorFlow (this process)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    flops = 2 * size**3
    best = {}
    a_tf, b_tf = tf.constant(a), tf.constant(b)
    products = {"numpy": lambda: a @ b, "tensorflow": lambda: tf.matmul(a_tf, b_tf).numpy()}
    for name, product in products.items():
        product()  # warm-up: thread pools, kernel selection
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            product()
            times.append(time.perf_counter() - start)
        best[name] = flops / min(times) / 1e9
    return best


def run_worker(settings):
    """Run ``settings`` in a fresh Python process and return what ``work`` measured."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **settings.get("env", {})}
    completed = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(settings)], env=env,
        capture_output=True, text=True, check=False)
    if completed.returncode:
        raise RuntimeError(f"worker {settings} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def median_ratio(numerators, denominators):
    """The median of the ratios of times measured in the same turns."""
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


def machine_facts():
    flags = cpu_flags()
    bf16 = "has avx512_bf16" if "avx512_bf16" in flags else "no avx512_bf16"
    avx512 = "avx512f" if "avx512f" in flags else "no AVX-512"
    return f"{os.cpu_count()} cores, {cpu_model()} ({avx512}, {bf16}, avx2 {'avx2' in flags})"


def _load():
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def summarise(name, runs, flops_per_image, ceiling):
    """One table row from the ``runs`` of one contender."""
    later = [wall for run in runs for wall in run["walls"][1:]]
    cpu = [c for run in runs for c in run["cpus"][1:]]
    epoch = statistics.median(later)
    gflops = 3 * flops_per_image * runs[0]["n_images"] / epoch / 1e9
    return {
        "name": name, "epoch": epoch, "spread": (min(later), max(later)),
        "cores": sum(cpu) / sum(later), "gflops": gflops, "fraction": gflops / ceiling,
        "accuracy": statistics.median(run["accuracy"] for run in runs),
        "loss": runs[0]["losses"][-1], "threads": runs[0]["threads"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=12_000,
                        help="training images, the first of Fashion-MNIST's 60,000")
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs per fit; the first is left out of the timing")
    parser.add_argument("--repeats", type=int, default=1, help="fits per contender")
    parser.add_argument("--turns", type=int, default=8,
                        help="turns of CNNClassifier and raw Keras in one process (0: none)")
    parser.add_argument("--precision-turns", type=int, default=6,
                        help="turns of CNNClassifier in float32 and mixed_bfloat16 (0: none)")
    parser.add_argument("--only", nargs="+", choices=CONTENDERS,
                        help="run these contenders only")
    parser.add_argument("--no-doc", action="store_true",
                        help="print the table without rewriting docs/benchmarks.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        settings = json.loads(args.worker)
        if settings.get("ceiling"):
            result = matmul_ceiling()
        elif settings.get("turns"):
            result = interleaved(settings)
        elif settings.get("precision_turns"):
            result = precision_turns(settings)
        else:
            result = work(settings)
        print(json.dumps(result))
        return
    if not FASHION.exists():
        print(f"bench_training skipped: {FASHION} not found (the full Fashion-MNIST is not "
              "part of the repository).")
        return
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is left out of the timing")
    names = args.only or list(CONTENDERS)
    load_before = _load()
    ceilings = run_worker({"ceiling": True})
    ceiling = max(ceilings.values())
    runs = {name: [] for name in names}
    for _ in range(args.repeats):
        for name in names:
            settings = {**CONTENDERS[name][1], "epochs": args.epochs}
            settings["n_images"] = min(args.n_images, settings.get("max_images", args.n_images))
            runs[name].append(run_worker(settings))
            print(f"{name}: {runs[name][-1]['walls']}", file=sys.stderr)
    turns = args.turns and run_worker({"turns": args.turns, "n_images": args.n_images})
    precision = args.precision_turns and run_worker(
        {"precision_turns": args.precision_turns, "n_images": args.n_images})
    load_after = _load()
    flops = network_flops()
    rows = [summarise(name, runs[name], flops, ceiling) for name in names]
    section = render(args, rows, ceilings, flops, turns, precision, load_before, load_after)
    print(section)
    if not args.no_doc:
        write_section("training", section)


def render(args, rows, ceilings, flops, turns, precision, load_before, load_after):
    import keras
    import numpy as np

    table = [
        "| contender | s/epoch (median) | range | cores used | threads (intra, inter) "
        "| GFLOP/s | of ceiling | test accuracy | last loss |",
        "|---|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        table.append(
            f"| {CONTENDERS[row['name']][0]} | {row['epoch']:.2f} | "
            f"{row['spread'][0]:.2f}–{row['spread'][1]:.2f} | {row['cores']:.2f} | "
            f"{_threads(row['threads'])} | {row['gflops']:.1f} | "
            f"{row['fraction']:.0%} | {row['accuracy']:.4f} | {row['loss']:.4f} |")
    by_name = {row["name"]: row for row in rows}
    lines = []
    if "keras" in by_name and "skimgclf" in by_name:
        keras_row, ours = by_name["keras"], by_name["skimgclf"]
        lines.append(
            f"Speed ratio, raw Keras s/epoch ÷ CNNClassifier s/epoch: **"
            f"{keras_row['epoch'] / ours['epoch']:.2f}** on the medians, "
            f"{keras_row['spread'][0] / ours['spread'][0]:.2f} on the fastest epochs "
            "(goal ≥ 0.95).")
    if turns:
        ours, raw = turns["skimgclf"], turns["keras"]
        epoch_ratio = median_ratio(raw["epochs"], ours["epochs"])
        call_ratio = median_ratio(raw["calls"], ours["calls"])
        lines.append(
            f"Taking turns in one process ({args.turns} turns after a first that traces, one "
            f"epoch each per turn, the same {args.n_images:,} images): CNNClassifier "
            f"{statistics.median(ours['epochs']):.2f} s/epoch against raw Keras "
            f"{statistics.median(raw['epochs']):.2f} (medians); raw Keras ÷ CNNClassifier, "
            f"median of the turns' ratios: **{epoch_ratio:.2f}** per epoch, "
            f"{call_ratio:.2f} per whole `fit` call, input checks included (goal ≥ 0.95).")
    if precision:
        full, half = precision["float32"], precision["mixed_bfloat16"]
        ratio = median_ratio(full["epochs"], half["epochs"])
        lines.append(
            f"Precision, taking turns in one process ({args.precision_turns} turns after a first "
            f"that traces, one epoch each per turn, the same {precision['n_images']:,} images): "
            f"CNNClassifier in float32 {statistics.median(full['epochs']):.2f} s/epoch against "
            f"mixed_bfloat16 {statistics.median(half['epochs']):.2f}; float32 ÷ mixed_bfloat16, "
            f"median of the turns' ratios: **{ratio:.2f}×**; test accuracy after "
            f"{args.precision_turns + 1} epochs: {full['accuracy']:.4f} (float32) against "
            f"{half['accuracy']:.4f} (mixed_bfloat16). precision='auto' picks "
            f"{precision['auto'][0]} here: {precision['auto'][1]}.")
    float32 = [row for row in rows if not CONTENDERS[row["name"]][1].keys()
               & {"policy", "batch_size", "max_images", "precision"}
               or CONTENDERS[row["name"]][1].get("precision") == "float32"]
    fastest = min(float32, key=lambda row: row["epoch"])
    lines.append(f"Fastest at batch {default_batch_size()} in float32 (median s/epoch): "
                 f"{CONTENDERS[fastest['name']][0]}.")
    return "\n".join([
        START,
        "## Training speed (`benchmarks/bench_training.py`)",
        "",
        f"Machine: {machine_facts()}; Python {platform.python_version()}, NumPy "
        f"{np.__version__}, Keras {keras.__version__}, TensorFlow {_tf_version()}. Load average "
        f"(1, 5, 15 min) before: {load_before}; after: {load_after}.",
        "",
        f"{args.n_images:,} Fashion-MNIST training images, {args.epochs} epochs per fit, "
        f"{args.repeats} fit(s) per contender, batch {default_batch_size()} (CNNClassifier's "
        "default) unless said; s/epoch is the median "
        "of the epochs after the first. Test accuracy on the 10,000 test images (after so "
        "few epochs it compares settings, it is not the network's best). "
        f"FLOPs: {flops / 1e6:.2f} M per image forward, training counted as 3× that. "
        f"Matrix-multiply ceiling (float32 2048×2048, best of 10): NumPy "
        f"{ceilings['numpy']:.1f} GFLOP/s, TensorFlow {ceilings['tensorflow']:.1f} GFLOP/s; "
        "the fraction uses the larger.",
        "",
        *table,
        "",
        *(line for note in lines for line in (note, "")),
        END,
    ])


def _threads(pair):
    # 0 is TensorFlow's "pick for me" (the number of cores), or what the environment says.
    return ", ".join(str(value) if value else "auto" for value in pair)


def _tf_version():
    import tensorflow as tf

    return tf.__version__


if __name__ == "__main__":
    main()
