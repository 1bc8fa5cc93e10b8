"""Your own photos: a pretrained backbone against the tutorial network, on generated photos.

The photos are colour JPEGs of varied sizes, each a real item pasted off-centre on a crop of a
real photo (``skimgclf.datasets.make_photos``). The target task is digits: MNIST items, 20
photos per class to train on, 50 per class to test on. "Pretrained" weights come from another
generated task, as ImageNet's would come from photos of other things: mobilenet_v3_small is
trained from random weights on 10,000 photos of Fashion-MNIST items (``--pretrain-photos``), its
batch normalisation statistics then measured on 1,000 of them. Items fill half the photo's
shorter side to nearly all of it (``object_scale=(0.5, 0.9)``). ImageNet's weights cannot be
downloaded here, so they could not be measured.

Side by side, in one run, on the same 64×64 photos, each with and without augmentation (random
rotation, zoom, shift and contrast: no mirror, which would change the meaning of a digit) and
with and without test-time augmentation (``tta="shift"``): the tutorial network from scratch,
mobilenet_v3_small from scratch, mobilenet_v3_small fine-tuned from the pretrained weights, and
``ImageEmbedder`` on the same weights with ``LogisticRegression`` behind it. Reported: test
accuracy and training wall time. Then the embedding throughput of mobilenet_v3_small at 96 and
224 pixels and the peak memory of the process doing it, each measured in a fresh process.

Needs ``../shared/data/fashion-mnist.npz`` and ``mnist.npz`` (never downloaded). Run
``python benchmarks/bench_photos.py``: about 15 minutes on 2 cores; it prints a table and
rewrites its section of ``docs/benchmarks.md`` unless given ``--no-doc``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _doc import markers, write_section  # noqa: E402  (beside this script)
from bench_training import machine_facts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
START, END = markers("photos")
SIZE = 64
# Items from half the photo's shorter side to nearly all of it: at the default (0.25, 0.6)
# nothing here learns from 20 photos per class, nor does pretraining within minutes on 2 cores.
OBJECT_SCALE = (0.5, 0.9)
# Digits: no mirror.
AUGMENT = {"rotation": 0.05, "zoom": 0.1, "translation": 0.1, "contrast": 0.1}
TTA = "shift"

THROUGHPUT = """
import json, resource, sys, time
import numpy as np
from skimgclf import ImageEmbedder
side, n = int(sys.argv[1]), int(sys.argv[2])
imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
images = np.random.default_rng(0).integers(0, 256, (n, side, side, 3), dtype=np.uint8)
embedder = ImageEmbedder(weights=None, random_state=0).fit(images[:8])
embedder.transform(images[:64])
start = time.perf_counter()
embedder.transform(images)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"images_per_s": n / seconds, "peak_mib": peak, "imported_mib": imported}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pretrain-photos", type=int, default=10000)
    parser.add_argument("--pretrain-epochs", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=30,
                        help="epochs of the networks trained on the target task")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from skimgclf import CNNClassifier, ImageEmbedder

    print(machine_facts(), flush=True)
    # First, from a small process: Linux keeps a process's peak memory across the exec that
    # starts a child, so a child of this one, grown large, would report this one's peak.
    throughput = {side: _throughput(side) for side in (96, 224)}
    print(throughput, flush=True)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        (x_train, y_train), (x_test, y_test) = _photos(work)
        weights, pretrain_s = _pretrain(work, args)
        print(f"pretrained in {pretrain_s:.0f} s", flush=True)
        rows = []
        contenders = {
            "tutorial network, from scratch": {"epochs": args.epochs},
            "mobilenet_v3_small, from scratch": {"backbone": "mobilenet_v3_small",
                                                 "weights": None, "epochs": args.epochs},
            "mobilenet_v3_small, fine-tuned": {"backbone": "mobilenet_v3_small",
                                               "weights": str(weights),
                                               "epochs": args.epochs // 2,
                                               "freeze_epochs": 3},
        }
        for name, params in contenders.items():
            for augment in (None, AUGMENT):
                clf = CNNClassifier(**params, augment=augment, random_state=0)
                start = time.perf_counter()
                clf.fit(x_train, y_train)
                fit_s = time.perf_counter() - start
                plain = clf.score(x_test, y_test)
                with_tta = clf.set_params(tta=TTA).score(x_test, y_test)
                rows.append((name, augment is not None, plain, with_tta, fit_s))
                print(rows[-1], flush=True)
        embed = make_pipeline(ImageEmbedder(weights=str(weights)),
                              LogisticRegression(max_iter=3000))
        start = time.perf_counter()
        embed.fit(x_train, y_train)
        rows.append(("ImageEmbedder + LogisticRegression", False, embed.score(x_test, y_test),
                     None, time.perf_counter() - start))
        print(rows[-1], flush=True)
    section = _section(rows, throughput, pretrain_s, args)
    print(section)
    if not args.no_doc:
        write_section("photos", section)


def _photos(work):
    """The target task's training and test photos, loaded at SIZE×SIZE as 8-bit pixels."""
    import pandas as pd

    from skimgclf import ImageFolderLoader
    from skimgclf.datasets import export_photo_folder, make_photos

    with np.load(DATA / "mnist.npz") as mnist:
        train = make_photos(mnist["x_train"], mnist["y_train"], n_per_class=20,
                            object_scale=OBJECT_SCALE, random_state=0)
        test = make_photos(mnist["x_test"], mnist["y_test"], n_per_class=50,
                           object_scale=OBJECT_SCALE, random_state=1)
    layout = export_photo_folder(*train, work / "digits", test_photos=test[0])
    loader = ImageFolderLoader(layout.train_dir, suffix=".jpg", color_mode="rgb",
                               target_size=(SIZE, SIZE),
                               dtype="uint8", rescale=None, n_jobs=-1)
    x_train = loader.fit_transform(pd.read_csv(layout.train_csv, dtype=str)[["id"]])
    x_test = loader.set_params(image_dir=layout.test_dir).transform(
        pd.read_csv(layout.test_csv, dtype=str)[["id"]])
    return (x_train, np.asarray(train[1])), (x_test, np.asarray(test[1]))


def _pretrain(work, args):
    """Weights of mobilenet_v3_small without its top, learnt on photos of Fashion-MNIST items."""
    from skimgclf import CNNClassifier
    from skimgclf._backbones import backbone_of
    from skimgclf._backend import keras
    from skimgclf.datasets import make_photos

    with np.load(DATA / "fashion-mnist.npz") as fashion:
        photos, y = make_photos(fashion["x_train"], fashion["y_train"],
                                n_per_class=args.pretrain_photos // 10,
                                object_scale=OBJECT_SCALE, random_state=2)
    x = np.stack([_resized(photo) for photo in photos])
    start = time.perf_counter()
    clf = CNNClassifier(backbone="mobilenet_v3_small", weights=None, epochs=args.pretrain_epochs,
                        augment="standard", random_state=0, verbose=2).fit(x, np.asarray(y))
    seconds = time.perf_counter() - start
    backbone = backbone_of(clf.model_)
    # Its batch normalisation statistics, averaged over the last few dozen steps, are
    # measured on one large batch instead, as a long training would have settled them.
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    backbone(x[:1000].astype("float32"), training=True)
    path = work / "mobilenet_v3_small_fashion_photos.weights.h5"
    backbone.save_weights(path)
    return path, seconds


def _resized(photo):
    from PIL import Image

    return np.asarray(Image.fromarray(photo).resize((SIZE, SIZE), Image.Resampling.BILINEAR))


def _throughput(side):
    done = subprocess.run([sys.executable, "-c", THROUGHPUT, str(side), "512"], check=True,
                          capture_output=True, text=True, env={**os.environ,
                                                               "PYTHONUNBUFFERED": "1"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def _section(rows, throughput, pretrain_s, args):
    lines = [
        START,
        "## Your own photos (`benchmarks/bench_photos.py`)",
        "",
        f"`python benchmarks/bench_photos.py`: generated colour photos of MNIST digits "
        f"(`skimgclf.datasets.make_photos`, `object_scale={OBJECT_SCALE}`), 20 per class to "
        f"train on and 50 per class to test on, loaded at {SIZE}×{SIZE}. The pretrained "
        "weights are mobilenet_v3_small's after "
        f"{args.pretrain_epochs} epochs on {args.pretrain_photos:,} generated photos of "
        f"Fashion-MNIST items ({pretrain_s:.0f} s), a task as unlike the target as ImageNet "
        "is unlike a user's photos. Networks from scratch train "
        f"{args.epochs} epochs, the fine-tuned one {args.epochs // 2} (3 with the backbone "
        "frozen). Augmentation: random rotation, zoom, shift and contrast (no mirror, for "
        f"digits); test-time augmentation: `tta=\"{TTA}\"`. One seed: on 500 test photos, "
        "differences under about 3 points are within noise.",
        "",
        "| model | augmentation | test accuracy | with TTA | training (s) |",
        "|---|---|---:|---:|---:|",
    ]
    for name, augmented, plain, with_tta, fit_s in rows:
        tta = "–" if with_tta is None else f"{with_tta:.3f}"
        lines.append(f"| {name} | {'yes' if augmented else 'no'} | {plain:.3f} | {tta} | "
                     f"{fit_s:.0f} |")
    lines += [
        "",
        "Embedding throughput of `ImageEmbedder(backbone=\"mobilenet_v3_small\")` on 512 "
        "colour 8-bit images, in a fresh process: "
        + "; ".join(f"{side}×{side}: {facts['images_per_s']:.0f} images/s, peak memory "
                    f"{facts['peak_mib']:.0f} MiB" for side, facts in throughput.items())
        + f" (of which {throughput[96]['imported_mib']:.0f} MiB once skimgclf and TensorFlow "
          "are imported).",
        "",
        "ImageNet's weights could not be measured here (no download is possible). With them, "
        "expect fine-tuning and embeddings to do better still on photos of everyday things, "
        "and less well on images unlike ImageNet's (digits, X-rays), where weights pretrained "
        "on a closer task, as here, are worth making.",
        "",
        f"Machine: {machine_facts()}; Python {sys.version.split()[0]}.",
        END,
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
