#!/usr/bin/env bash
# skimgclf on a GPU machine without TensorFlow and without a network: install the carried wheels,
# pick the Keras backend, run benchmarks/gpu_run.py, write one results file.
#
# Usage: bash benchmarks/run_gpu.sh [--wheels DIR] [--data NPZ] [--backend NAME] [--out FILE]
#                                   [--quick] [--doc NAME]
#   --wheels DIR    the folder benchmarks/prepare_gpu_wheels.sh filled (default
#                   benchmarks/gpu-kit); its wheels are installed with pip, from there alone,
#                   into the Python that runs this ($PYTHON, default python3), only where that
#                   Python lacks one of skimgclf's requirements (setup.cfg). Without the folder,
#                   the requirements must be installed already.
#   --data NPZ      Fashion-MNIST as uint8 x_train, y_train, x_test, y_test (default: the
#                   folder's fashion-mnist-10k.npz, else ../shared/data/fashion-mnist.npz, else
#                   the package's own sample)
#   --backend NAME  jax, torch or tensorflow (default: $KERAS_BACKEND, else the first of
#                   tensorflow, jax, torch that imports)
#   --out FILE      the results file (default $OUT/gpu-results.md where $OUT is set, else
#                   ./gpu-results.md)
#   --quick         fewer images and epochs: minutes on a CPU
#   --doc NAME      also write the results into docs/benchmarks.md, section bench:NAME
# Prints the GPU, CPU and backend facts and each step's table as it ends; skimgclf is run from
# this checkout (PYTHONPATH), not installed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
WHEELS=$ROOT/benchmarks/gpu-kit
DATA=
BACKEND=${KERAS_BACKEND:-}
RESULTS=${OUT:-.}/gpu-results.md
OPTIONS=()
while (($#)); do
    case $1 in
        --wheels) WHEELS=$2; shift 2 ;;
        --data) DATA=$2; shift 2 ;;
        --backend) BACKEND=$2; shift 2 ;;
        --out) RESULTS=$2; shift 2 ;;
        --quick) OPTIONS+=(--quick); shift ;;
        --doc) OPTIONS+=(--doc "$2"); shift 2 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "run_gpu.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
# The paths given are the caller's; the run works from the repository's root.
WHEELS=$(realpath -m "$WHEELS") RESULTS=$(realpath -m "$RESULTS")
DATA=${DATA:+$(realpath -m "$DATA")}
cd "$ROOT"
began=$SECONDS

# skimgclf's requirements, read from setup.cfg so that they are written in one place.
mapfile -t REQUIREMENTS < <("$PYTHON" - <<'PY'
import configparser

config = configparser.ConfigParser()
config.read("setup.cfg")
for line in config["options"]["install_requires"].splitlines():
    requirement = line.split("#")[0].strip()
    if requirement:
        print(requirement)
PY
)
if [[ -d $WHEELS ]]; then
    "$PYTHON" -m pip install --quiet --no-index --find-links "$WHEELS" "${REQUIREMENTS[@]}"
fi
echo "Installed in $((SECONDS - began)) s: $("$PYTHON" -m pip list 2>/dev/null \
    | grep -iE '^(keras|scikeras|optree|jax|torch|tensorflow|scikit-learn|numpy) ' \
    | awk '{printf "%s %s, ", $1, $2}')"

if [[ -z $BACKEND ]]; then
    for candidate in tensorflow jax torch; do
        if "$PYTHON" -c "import $candidate" 2>/dev/null; then BACKEND=$candidate; break; fi
    done
fi
if [[ -z $BACKEND ]]; then
    echo "run_gpu.sh: none of tensorflow, jax, torch imports with $PYTHON" >&2
    exit 1
fi
export KERAS_BACKEND=$BACKEND PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [[ -z $DATA ]]; then
    for candidate in "$WHEELS/fashion-mnist-10k.npz" ../shared/data/fashion-mnist.npz; do
        if [[ -f $candidate ]]; then DATA=$candidate; break; fi
    done
fi
status=0
"$PYTHON" benchmarks/gpu_run.py ${DATA:+--data "$DATA"} --out "$RESULTS" "${OPTIONS[@]}" || status=$?
echo "run_gpu.sh: $((SECONDS - began)) s in all; results in $RESULTS"
exit $status
