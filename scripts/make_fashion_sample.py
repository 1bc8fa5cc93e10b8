"""Rebuild ``skimgclf/datasets/data/fashion_mnist_sample.npz`` from the full Fashion-MNIST.

The sample is 400 training and 100 test images per class, drawn without replacement with a
fixed seed, kept in the original order. ``train_index`` and ``test_index`` record where each
image sits in the official files, so the sample can always be traced back to its source.

Usage: python scripts/make_fashion_sample.py ../shared/data/fashion-mnist.npz
"""

import sys
from pathlib import Path

import numpy as np

PER_CLASS = {"train": 400, "test": 100}
TARGET = Path(__file__).resolve().parents[1] / "skimgclf/datasets/data/fashion_mnist_sample.npz"


def main(source):
    data = np.load(source)
    rng = np.random.default_rng(0)
    arrays = {}
    for split, per_class in PER_CLASS.items():
        y = data[f"y_{split}"]
        index = np.sort(np.concatenate([
            rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)
        ]))
        arrays[f"x_{split}"] = data[f"x_{split}"][index]
        arrays[f"y_{split}"] = y[index]
        arrays[f"{split}_index"] = index.astype(np.int32)
    np.savez_compressed(TARGET, **arrays)
    print(f"wrote {TARGET} ({TARGET.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main(sys.argv[1])
