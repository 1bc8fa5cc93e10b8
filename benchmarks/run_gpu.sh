#!/usr/bin/env bash
# skimgclf on a GPU machine: the end-to-end Fashion-MNIST job and a grid search, timed.
#
# Usage: bash benchmarks/run_gpu.sh [FASHION_NPZ]
#   FASHION_NPZ  the full Fashion-MNIST .npz (default ../shared/data/fashion-mnist.npz);
#                without it only the grid search (on the package's own sample) runs.
# Needs skimgclf's dependencies installed with a GPU build of TensorFlow, or Keras on JAX or
# torch where TensorFlow is absent (the backend is picked in that order). Prints the GPU, the
# backend and the benchmarks' tables; with $OUT set, also writes them to $OUT/gpu-results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
NPZ=${1:-../shared/data/fashion-mnist.npz}
RESULTS=$(mktemp)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK" "$RESULTS"' EXIT
export TF_CPP_MIN_LOG_LEVEL=2

if [[ -z ${KERAS_BACKEND:-} ]]; then
    for backend in tensorflow jax torch; do
        if "$PYTHON" -c "import $backend" 2>/dev/null; then export KERAS_BACKEND=$backend; break; fi
    done
fi
"$PYTHON" -c "import skimgclf" 2>/dev/null || "$PYTHON" -m pip install --no-deps -q -e .

{
    echo "## GPU run, $(date -u +%Y-%m-%d)"
    echo
    echo "GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'none visible (nvidia-smi failed)')"
    echo "CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    "$PYTHON" - <<'PY'
import keras
devices = []
if keras.backend.backend() == "tensorflow":
    import tensorflow as tf
    devices = [d.name for d in tf.config.list_physical_devices("GPU")]
elif keras.backend.backend() == "jax":
    import jax
    devices = [str(d) for d in jax.devices() if d.platform == "gpu"]
else:
    import torch
    devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
print(f"Keras {keras.__version__} on {keras.backend.backend()}; GPUs seen: {devices or 'none'}")
PY
    echo
    if [[ -f $NPZ ]]; then
        "$PYTHON" benchmarks/bench_end_to_end.py --data "$NPZ" --workdir "$WORK/e2e" --no-doc \
            | sed -n '/bench:end-to-end:start/,/bench:end-to-end:end/p'
    else
        echo "End to end: not run, $NPZ not found."
    fi
    echo
    "$PYTHON" benchmarks/bench_search.py --repeats 1 --no-doc \
        | sed -n '/bench:search:start/,/bench:search:end/p'
} | tee "$RESULTS"
if [[ -n ${OUT:-} ]]; then cp "$RESULTS" "$OUT/gpu-results.md"; fi
