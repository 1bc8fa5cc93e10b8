"""Exported models against skimgclf's predict_proba: latency of one image, throughput of 256.

Two networks: the tutorial network on 28×28 grey images (fed the loader's float pixels, as
``skimgclf predict`` feeds it) and mobilenet_v3_small from random weights on 64×64 colour
images (fed 8-bit pixels, as the command line loads them for a backbone); accuracy plays no
part, so each trains one epoch on a few hundred images. Each is exported with
``skimgclf.export_model`` to ONNX and TFLite, and the three ways to predict take turns,
``--repeats`` rounds of batch-1 calls and of batch-256 calls; the table has the medians.
onnxruntime and TensorFlow's TFLite interpreter run with their default threads, as Keras does.

Run ``python benchmarks/bench_export.py`` (``--repeats``, ``--no-doc``): it prints the table
and writes it into ``docs/benchmarks.md`` and ``docs/deploying.md``. It needs the ``export``
extra and only the package's own sample.
"""

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
from _doc import cpu_model, markers, write_section  # noqa: E402  (beside this script)

from skimgclf import CNNClassifier, export_model  # noqa: E402
from skimgclf.datasets import load_fashion_mnist_sample  # noqa: E402

DEPLOYING = Path(__file__).resolve().parents[1] / "docs" / "deploying.md"
THROUGHPUT_BATCH = 256


def networks(n_train):
    """``{name: (classifier, 8-bit images, what predict_proba is fed)}``."""
    (x, y), _ = load_fashion_mnist_sample()
    x, y = x[:max(n_train, THROUGHPUT_BATCH)], y[:max(n_train, THROUGHPUT_BATCH)]
    grey = x[..., None]
    tutorial = CNNClassifier(epochs=1, random_state=0).fit(grey[:n_train] / 255, y[:n_train])
    # 64×64 colour: the items, tinted, on a grey field.
    colour = np.repeat(np.pad(x, ((0, 0), (18, 18), (18, 18)), constant_values=60)[..., None],
                       3, axis=-1)
    colour[..., 0] //= 2
    backbone = CNNClassifier(backbone="mobilenet_v3_small", weights=None, dense_units=0,
                             epochs=1, random_state=0).fit(colour[:n_train], y[:n_train])
    return {"tutorial network, 28×28 grey": (tutorial, grey, lambda images: images / 255),
            "mobilenet_v3_small, 64×64 colour": (backbone, colour, lambda images: images)}


def tflite_runner(path, batch):
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(path))
    inputs, outputs = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inputs["index"], (len(batch), *batch.shape[1:]))
    interpreter.allocate_tensors()

    def run():
        interpreter.set_tensor(inputs["index"], batch)
        interpreter.invoke()
        return interpreter.get_tensor(outputs["index"])

    return run


def measure(name, clf, images, feed, repeats, work):
    paths = {fmt: export_model(clf, Path(work) / f"{len(os.listdir(work))}.{fmt}", format=fmt)
             for fmt in ("onnx", "tflite")}
    session = onnxruntime.InferenceSession(str(paths["onnx"]))
    times = {}
    for label, batch in (("latency", images[:1]), ("throughput", images[:THROUGHPUT_BATCH])):
        fed = feed(batch)
        runners = {"predict_proba": lambda fed=fed: clf.predict_proba(fed),
                   "onnxruntime": lambda batch=batch: session.run(None, {"images": batch})[0],
                   "TFLite": tflite_runner(paths["tflite"], batch)}
        expected = runners["predict_proba"]()
        for runner in runners.values():
            # Warm-up, and a check that the three agree.
            np.testing.assert_allclose(runner(), expected, atol=1e-5)
        names = list(runners)
        for round_ in range(repeats):
            for runner_name in names[round_ % 3:] + names[:round_ % 3]:
                start = time.perf_counter()
                runners[runner_name]()
                times.setdefault((label, runner_name), []).append(time.perf_counter() - start)
    row = {key: statistics.median(values) for key, values in times.items()}
    print(name, {f"{k[0]} {k[1]}": f"{v * 1000:.2f} ms" for k, v in row.items()}, flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--n-train", type=int, default=256)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()
    print(f"{machine()}; load average {load_before}", flush=True)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="skimgclf-bench-export-") as work:
        for name, (clf, images, feed) in networks(args.n_train).items():
            rows[name] = measure(name, clf, images, feed, args.repeats, work)
    body = report(rows, args, load_before, os.getloadavg())
    print(body)
    if not args.no_doc:
        start, end = markers("export")
        heading = ("## Export: onnxruntime and TFLite against predict_proba "
                   "(`benchmarks/bench_export.py`)")
        write_section("export", "\n".join([start, heading, "", body, end]))
        # The deployment guide shows the table under its own heading.
        write_section("export", "\n".join([start, body, end]), doc=DEPLOYING)


def machine():
    flags = set()
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    shown = [flag for flag in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
             if flag in flags]
    return f"{os.cpu_count()} cores, {cpu_model()} (flags: {', '.join(shown) or 'none of note'})"


def report(rows, args, load_before, load_after):
    lines = [f"Machine: {machine()}. Load average before: "
             f"{', '.join(f'{v:.2f}' for v in load_before)}; after: "
             f"{', '.join(f'{v:.2f}' for v in load_after)} (other jobs shared the cores: "
             f"compare the columns, not the absolute times). Medians of {args.repeats} "
             "calls each, the three ways taking turns; latency: one image per call; "
             f"throughput: {THROUGHPUT_BATCH} images per call.", "",
             "| network | predict_proba, 1 image (ms) | onnxruntime (ms) | TFLite (ms) | "
             f"predict_proba, {THROUGHPUT_BATCH} (images/s) | onnxruntime (images/s) | "
             "TFLite (images/s) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, row in rows.items():
        latency = [row["latency", runner] * 1000
                   for runner in ("predict_proba", "onnxruntime", "TFLite")]
        throughput = [THROUGHPUT_BATCH / row["throughput", runner]
                      for runner in ("predict_proba", "onnxruntime", "TFLite")]
        lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in latency) + " | "
                     + " | ".join(f"{v:,.0f}" for v in throughput) + " |")
    lines += ["", "The exported files' probabilities matched `predict_proba`'s within 1e-5 "
              "(checked once per network, way and batch size)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
