#!/usr/bin/env bash
# Fill the folder that benchmarks/run_gpu.sh installs from, for a GPU machine that cannot download.
#
# Usage: bash benchmarks/prepare_gpu_wheels.sh [--python-version X.Y] [--data NPZ] [DIR]
#   DIR               the folder to fill (default benchmarks/gpu-kit, which git ignores)
#   --python-version  the target's Python (default 3.12): compiled wheels (optree, h5py,
#                     ml-dtypes) are taken for it, as manylinux x86-64 builds
#   --data NPZ        the full Fashion-MNIST .npz (default ../shared/data/fashion-mnist.npz);
#                     its first 10,000 training and 2,000 test images are written to
#                     DIR/fashion-mnist-10k.npz for the run. Skipped when the file is absent.
# The target is assumed to have NumPy, scikit-learn, pandas, Pillow, Matplotlib, joblib, tqdm
# and its own JAX or torch, but not Keras or scikeras. Keras's own needs are carried too, in case
# the target lacks one; pip installs from DIR only what the target does not already have.
# The folder must stay within what can be carried (64 MiB with the repository): its size is
# printed, and the script fails above 48 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PY_VERSION=3.12
NPZ=../shared/data/fashion-mnist.npz
DIR=benchmarks/gpu-kit
while (($#)); do
    case $1 in
        --python-version) PY_VERSION=$2; shift 2 ;;
        --data) NPZ=$2; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) DIR=$1; shift ;;
    esac
done
# What skimgclf needs and the target lacks, pinned to the versions tested here; then Keras's
# and optree's own needs (the target's image has them, at versions pip accepts).
WHEELS=(keras==3.15.1 scikeras==0.13.0 optree namex
        absl-py rich markdown-it-py mdurl pygments h5py ml-dtypes packaging typing-extensions)
mkdir -p "$DIR"
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$DIR" \
    --python-version "$PY_VERSION" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    "${WHEELS[@]}"
if [[ -f $NPZ ]]; then
    "$PYTHON" - "$NPZ" "$DIR/fashion-mnist-10k.npz" <<'PY'
import sys

import numpy as np

with np.load(sys.argv[1]) as full:
    np.savez_compressed(sys.argv[2], x_train=full["x_train"][:10_000],
                        y_train=full["y_train"][:10_000], x_test=full["x_test"][:2_000],
                        y_test=full["y_test"][:2_000])
PY
else
    echo "No $NPZ: the run will use the package's own sample of 4,000 images." >&2
fi
ls -l "$DIR"
size=$(du -sm "$DIR" | cut -f1)
echo "$DIR: $size MiB"
if ((size > 48)); then
    echo "$DIR is over 48 MiB: too much to carry with the repository (64 MiB in all)." >&2
    exit 1
fi
