"""Keras and its backend, started once: quietly, sharing GPU memory, or with a clear error.

Every module of skimgclf that needs Keras takes it from here (``from ._backend import keras``),
so the environment is set before the backend starts, in this one place, the first time any
of them is imported; importing ``skimgclf`` alone starts nothing.
"""

import logging
import os
import random
import re
import sys
import tempfile
from contextlib import contextmanager, nullcontext

import numpy as np

INSTALL_COMMAND = "pip install 'skimgclf[tensorflow-cpu]'"

# TensorFlow's C++ start-up notes (CPU instruction sets, XLA) bury a user's own output; a user
# who wants them sets the variable before importing skimgclf.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# JAX reserves most of a GPU's memory when it starts; let folds and parallel jobs share it.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

_DEVICE = re.compile(r"(cpu|gpu)(:\d+)?")
_BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}

# absl prints these before its logging is set up, straight to the process's stderr, where
# TF_CPP_MIN_LOG_LEVEL cannot reach them; TensorFlow's two native libraries print them twice.
_START_UP_NOTICES = re.compile(
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to "
    rb"STDERR|I\d{4} [^\n]*\] oneDNN custom operations are on")


@contextmanager
def _without_start_up_notices():
    """Hold back what reaches file descriptor 2 meanwhile; then pass on all but the notices."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        # No usable stderr (a closed descriptor, a replaced sys.stderr): nothing to filter.
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().splitlines(keepends=True)
                    if not _START_UP_NOTICES.match(line)]
            if kept:
                os.write(2, b"".join(kept))


def _import_keras():
    with _without_start_up_notices():
        try:
            import keras
        except ModuleNotFoundError as exc:
            raise ImportError(
                f"skimgclf's networks need Keras and a backend for it, and "
                f"{(exc.name or 'tensorflow').split('.')[0]!r} is not "
                f"installed; install TensorFlow with: {INSTALL_COMMAND} (or "
                "'skimgclf[tensorflow]' for the GPU-capable build), or set KERAS_BACKEND to "
                "'jax' or 'torch' where one of those is installed") from exc
    return keras


def _let_gpu_memory_grow():
    # TensorFlow takes all of every visible GPU on first use unless told to grow; then a second
    # fold or job in another process could not start.
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            # The runtime was started before skimgclf was imported; its settings stand.
            return


keras = _import_keras()
_let_gpu_memory_grow()


def visible_gpus():
    """The GPUs that Keras's backend sees, as it names them, in its order; empty without one."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [gpu.name for gpu in tf.config.list_logical_devices("GPU")]
    if backend == "jax":
        import jax

        return [str(device) for device in jax.devices() if device.platform == "gpu"]
    if backend == "torch":
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return []


@contextmanager
def keras_session(device):
    """Where Keras builds, trains and predicts (``device``), without TensorFlow's false alarms.

    ``device`` is None (Keras chooses), ``"cpu"``, ``"gpu"`` or ``"gpu:<index>"``.
    """
    match = None if device is None else _DEVICE.fullmatch(device)
    if device is not None and not match:
        raise ValueError(f"device must be None, 'cpu', 'gpu' or 'gpu:<index>'; got {device!r}")
    if match and match[1] == "gpu":
        # TensorFlow and torch would quietly place everything on the CPU instead, and JAX
        # fails naming its "platforms".
        gpus = visible_gpus()
        index = int(match[2][1:]) if match[2] else 0
        if index >= len(gpus):
            backend = keras.backend.backend()
            raise ValueError(f"device={device!r}, but {_BACKEND_NAMES.get(backend, backend)} "
                             f"sees {len(gpus) or 'no'} GPU{'s' if len(gpus) != 1 else ''}; set "
                             "device=None to let Keras choose, or 'cpu'")
    logger = logging.getLogger("tensorflow")
    logger.addFilter(_not_new_network_tracing)
    try:
        with nullcontext() if device is None else keras.device(device):
            yield
    finally:
        logger.removeFilter(_not_new_network_tracing)


def seeded(seed):
    """Seed Python, NumPy and the backend meanwhile; nothing for a None ``seed``."""
    return nullcontext() if seed is None else _seed_everything(seed)


def _not_new_network_tracing(record):
    # TensorFlow counts traces per Python function across all models, so after a few fits each
    # new network tracing Keras's step functions once reads to it as needless "retracing".
    return "triggered tf.function retracing" not in record.getMessage()


@contextmanager
def _seed_everything(seed):
    # scikeras's `tensorflow_random_state` leaves TensorFlow's op determinism switched on,
    # after which every unseeded fit fails. This seeds Python, NumPy and the backend (TF,
    # torch, Keras's own generator for JAX), then gives Python and NumPy their state back.
    python_state, numpy_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    keras.utils.set_random_seed(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)  # noqa: NPY002
