"""The arithmetic a network trains and predicts in: bfloat16 where the hardware runs it natively.

Keras's mixed precision policies compute in 16 bits and keep the weights in float32. Measured
on the tutorial network (docs/benchmarks.md), ``mixed_bfloat16`` trains about 1.5 times faster
on a CPU with AVX-512 BF16 at equal accuracy, and about 10 times slower on one without, where
it is emulated: so ``precision="auto"`` asks the hardware.

Keras is imported by the functions that use it, so that benchmarks can read :func:`cpu_flags`
without starting TensorFlow.
"""

from contextlib import contextmanager

#: The values of ``CNNClassifier(precision=...)``.
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")

# x86 instruction sets whose bfloat16 dot products oneDNN (TensorFlow's CPU kernels) uses.
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(path="/proc/cpuinfo"):
    """The instruction-set flags of the first processor in ``path``; empty off Linux.

    x86 lists them as ``flags``, Arm as ``Features``.
    """
    try:
        with open(path, encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def gpu_capability(device=None):
    """The CUDA compute capability ``(major, minor)`` of the GPU Keras would use, or None.

    ``device`` as for ``CNNClassifier``: None (the first GPU, if any), ``"cpu"`` (None),
    ``"gpu"`` or ``"gpu:<index>"``.
    """
    from ._backend import keras

    if device is not None and not device.startswith("gpu"):
        return None
    index = int(device.partition(":")[2] or 0) if device else 0
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if index >= len(gpus):
            return None
        return tf.config.experimental.get_device_details(gpus[index]).get("compute_capability")
    if backend == "torch":
        import torch

        if index >= torch.cuda.device_count():
            return None
        return tuple(torch.cuda.get_device_capability(index))
    if backend == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        capability = getattr(gpus[index], "compute_capability", None) if index < len(gpus) else None
        return None if capability is None else tuple(int(n) for n in str(capability).split("."))
    return None


def resolve_precision(precision, device=None):
    """The Keras dtype policy ``precision`` stands for on this machine, and why.

    ``"auto"`` takes ``"mixed_bfloat16"`` on a GPU with bfloat16 tensor cores (compute
    capability 8.0 and up), ``"mixed_float16"`` on one with float16 tensor cores only (7.x),
    ``"mixed_bfloat16"`` on a CPU with AVX-512 BF16 or AMX when TensorFlow computes, and
    ``"float32"`` everywhere else. Other values are returned as given.

    Returns
    -------
    policy, reason : str, str
        The policy name and a phrase saying why it was chosen.
    """
    from ._backend import keras

    if precision != "auto":
        return precision, "as asked"
    capability = gpu_capability(device)
    if capability is not None:
        if tuple(capability) >= (8, 0):
            return "mixed_bfloat16", f"GPU of compute capability {capability[0]}.{capability[1]}"
        if tuple(capability) >= (7, 0):
            return "mixed_float16", f"GPU of compute capability {capability[0]}.{capability[1]}"
        return "float32", f"GPU of compute capability {capability[0]}.{capability[1]}"
    native = sorted(set(_BF16_CPU_FLAGS) & cpu_flags())
    if not native:
        return "float32", "the CPU has no native bfloat16 (avx512_bf16 or amx_bf16)"
    backend = keras.backend.backend()
    if backend != "tensorflow":
        # Measured with TensorFlow's oneDNN kernels only; JAX and torch may emulate it.
        return "float32", f"bfloat16 on the CPU is left to TensorFlow, not {backend}"
    return "mixed_bfloat16", f"the CPU has {' and '.join(native)}"


def is_native(policy, device=None):
    """Whether ``policy`` runs in hardware here, as far as :func:`resolve_precision` knows."""
    return policy == "float32" or resolve_precision("auto", device)[0] == policy


@contextmanager
def precision_scope(policy):
    """Build layers with the dtype policy ``policy`` meanwhile (Keras's setting is per thread)."""
    from ._backend import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def network_precision(model):
    """The dtype policy the layers of ``model`` compute in, nested models included.

    A saved network loads with its layers' policies but not the model's own, so this reads the
    layers: the output layer computes in float32 whatever the policy.
    """
    names = {layer.dtype_policy.name for layer in _layers(model) if layer.weights}
    mixed = sorted(name for name in names if name.startswith("mixed_"))
    return mixed[0] if mixed else "float32"


def in_float32(model):
    """A copy of ``model`` computing in float32, with its weights (float32 in every policy).

    The copy is not compiled: its optimizer starts afresh when compiled.
    """
    from ._backend import keras

    def as_float32(layer):
        config = layer.get_config()
        if "dtype" in config:  # operations such as `x + y` in a backbone have none
            config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=as_float32, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def _layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)
