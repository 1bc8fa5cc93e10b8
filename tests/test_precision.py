"""precision: bfloat16 where the hardware has it, float32 elsewhere; results that stay right."""

import keras
import numpy as np
import onnxruntime
import pytest

from skimgclf import CNNClassifier, _precision
from skimgclf._network import build_network, compile_network
from skimgclf._precision import cpu_flags, in_float32, network_precision, resolve_precision
from skimgclf.export import export_model
from skimgclf.persistence import load_model, save_model

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

TINY = {"filters": (8,), "dense_units": 16, "dense_dropout": 0.0, "learning_rate": 0.005,
        "epochs": 1, "random_state": 0}


@pytest.fixture
def machine(monkeypatch):
    """Pretend to be a machine with the given CPU flags and GPU (compute capability or None)."""
    def pretend(flags=(), gpu=None):
        monkeypatch.setattr(_precision, "cpu_flags", lambda: frozenset(flags))
        monkeypatch.setattr(_precision, "gpu_capability", lambda device=None: gpu)
    return pretend


@pytest.mark.parametrize(("flags", "gpu", "expected"), [
    (("avx2", "avx512f", "avx512_bf16"), None, "mixed_bfloat16"),
    (("avx2", "amx_bf16", "amx_tile"), None, "mixed_bfloat16"),
    (("avx2", "avx512f"), None, "float32"),
    ((), None, "float32"),
    (("avx2",), (8, 6), "mixed_bfloat16"),
    (("avx512_bf16",), (7, 5), "mixed_float16"),
    (("avx512_bf16",), (6, 1), "float32"),
])
def test_auto_picks_what_the_hardware_runs_natively(machine, flags, gpu, expected):
    machine(flags, gpu)
    policy, reason = resolve_precision("auto")
    assert policy == expected
    assert reason
    # An explicit choice is taken as given, whatever the machine.
    assert resolve_precision("mixed_float16")[0] == "mixed_float16"


def test_auto_leaves_cpu_bfloat16_to_tensorflow(machine, monkeypatch):
    machine(("avx512_bf16",))
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    assert resolve_precision("auto") == (
        "float32", "bfloat16 on the CPU is left to TensorFlow, not jax")


def test_cpu_flags_reads_the_first_processor(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "absent") == frozenset()


@pytest.fixture(scope="module")
def images(fashion_sample):
    (x_train, y_train), (x_test, y_test) = fashion_sample
    return x_train[:400], y_train[:400], x_test[:200], y_test[:200]


def _fit(precision, x, y):
    return CNNClassifier(**{**TINY, "epochs": 3}, precision=precision).fit(x, y)


@pytest.fixture(scope="module")
def bfloat16_fit(images):
    x_train, y_train, _, _ = images
    return _fit("mixed_bfloat16", x_train, y_train)


@pytest.fixture(scope="module")
def float32_fit(images):
    x_train, y_train, _, _ = images
    return _fit("float32", x_train, y_train)


def test_an_emulated_precision_is_said_to_be(machine, images):
    x_train, y_train, _, _ = images
    machine(("avx2",))
    with pytest.warns(UserWarning, match="'mixed_bfloat16' is emulated on this machine"):
        CNNClassifier(**TINY, precision="mixed_bfloat16").fit(x_train[:50], y_train[:50])


def test_bfloat16_computes_in_16_bits_and_answers_in_float32(bfloat16_fit, float32_fit,
                                                              images):
    _, _, x_test, y_test = images
    assert bfloat16_fit.precision_ == "mixed_bfloat16"
    layers = bfloat16_fit.model_.layers
    assert {layer.compute_dtype for layer in layers[1:-1]} == {"bfloat16"}
    assert layers[-1].compute_dtype == "float32"
    assert all(w.dtype == "float32" for w in bfloat16_fit.model_.weights)
    proba = bfloat16_fit.predict_proba(x_test)
    assert proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=0, atol=1e-12)
    # The same weights computing in float32 predict the same classes but for a few near ties.
    float32 = build_network(bfloat16_fit.image_shape_, bfloat16_fit.n_classes_, filters=(8,),
                            kernel_size=3, pool_size=2, dropout=0.25, dense_units=16,
                            dense_dropout=0.0, batch_norm=False, optimizer="adam",
                            learning_rate=0.005)
    float32.set_weights(bfloat16_fit.model_.get_weights())
    exact = float32.predict(x_test / np.float32(255), verbose=0)
    assert np.abs(exact - proba).max() < 0.05
    assert np.mean(exact.argmax(axis=1) == proba.argmax(axis=1)) >= 0.97
    # It learns as float32 does (chance is 0.1; docs/benchmarks.md has full-size runs).
    bfloat16, float32 = bfloat16_fit.score(x_test, y_test), float32_fit.score(x_test, y_test)
    assert bfloat16 > 0.5
    assert abs(bfloat16 - float32) < 0.08


def test_a_model_computes_in_its_own_precision_wherever_it_is_loaded(
        bfloat16_fit, float32_fit, images, tmp_path):
    _, _, x_test, _ = images
    loaded = load_model(save_model(bfloat16_fit, tmp_path / "bf16"))
    assert loaded.precision_ == "mixed_bfloat16"
    np.testing.assert_array_equal(loaded.predict_proba(x_test), bfloat16_fit.predict_proba(x_test))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        loaded = load_model(save_model(float32_fit, tmp_path / "f32"))
    finally:
        keras.config.set_dtype_policy(previous)
    assert loaded.precision_ == "float32"
    np.testing.assert_array_equal(loaded.predict_proba(x_test),
                                  float32_fit.predict_proba(x_test))


def test_a_model_is_loaded_in_float32_where_its_precision_would_be_emulated(
        bfloat16_fit, images, tmp_path, machine):
    _, _, x_test, _ = images
    directory = save_model(bfloat16_fit, tmp_path / "bf16")
    machine(("avx2",))
    loaded = load_model(directory)
    assert loaded.precision_ == "float32"
    assert {layer.compute_dtype for layer in loaded.model_.layers} == {"float32"}
    proba, saved = loaded.predict_proba(x_test), bfloat16_fit.predict_proba(x_test)
    assert np.abs(proba - saved).max() < 0.05
    assert np.mean(proba.argmax(axis=1) == saved.argmax(axis=1)) >= 0.97


def test_a_16_bit_network_is_exported_computing_in_float32(bfloat16_fit, images, tmp_path):
    _, _, x_test, _ = images
    path = export_model(bfloat16_fit, tmp_path / "bf16.onnx")
    session = onnxruntime.InferenceSession(str(path))
    proba = session.run(None, {session.get_inputs()[0].name: x_test[..., None]})[0]
    exact = in_float32(bfloat16_fit.model_).predict(x_test / np.float32(255), verbose=0)
    np.testing.assert_allclose(proba, exact, rtol=0, atol=1e-5)
    assert np.abs(proba - bfloat16_fit.predict_proba(x_test)).max() < 0.05


def test_float16_training_scales_its_loss_even_after_loading(tmp_path):
    # float16 gradients underflow without loss scaling; Keras adds it only to a model built
    # under the policy, so compile_network adds it to a loaded one too.
    network = build_network((8, 8, 1), 3, filters=(4,), kernel_size=3, pool_size=2,
                            dropout=0.0, dense_units=0, dense_dropout=0.0, batch_norm=False,
                            optimizer="adam", learning_rate=0.001, precision="mixed_float16")
    assert isinstance(network.optimizer, keras.optimizers.LossScaleOptimizer)
    network.save(tmp_path / "f16.keras")
    loaded = keras.saving.load_model(tmp_path / "f16.keras", compile=False)
    assert network_precision(loaded) == "mixed_float16"
    compile_network(loaded, "adam", 0.001)
    assert isinstance(loaded.optimizer, keras.optimizers.LossScaleOptimizer)
