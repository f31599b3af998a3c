"""`keras_realnvp.backend.batch_norm`: the backend's fused kernel equals the `keras.ops` reference.

Values and gradients (with respect to the input, gamma, beta, the folded bias, and in
evaluation the given statistics) agree to 1e-5 in float32, in training (batch statistics)
and evaluation (given statistics), on every backend; on PyTorch `batch_norm` runs
`torch.native_batch_norm`, elsewhere the reference itself, so there the test also checks the
reference against NumPy. Under `tf.distribute` (two logical CPU devices) and JAX's
`DataParallel` (two host devices), each in a subprocess, the statistics are those of the global
batch: values and gradients equal a single device's.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import outputs_and_gradients, to_numpy
from keras import ops

from keras_realnvp.backend.batch_norm import batch_norm, reference_batch_norm
from keras_realnvp.networks.coupling_resnet import batch_norm_relu

EPSILON = 1e-4
NAMES = ("x", "gamma", "beta", "bias", "mean", "variance")


def _inputs(dtype="float32", seed=0, shape=(6, 5, 4, 3)):
    rng = np.random.default_rng(seed)
    channels = shape[-1]
    return {
        "x": (rng.normal(size=shape) * 2.0 + 0.5).astype(dtype),
        "gamma": rng.normal(size=channels).astype(dtype),
        "beta": rng.normal(size=channels).astype(dtype),
        "bias": rng.normal(size=channels).astype(dtype),
        "mean": rng.normal(size=channels).astype(dtype),
        "variance": (rng.random(channels) + 0.2).astype(dtype),
        "cotangent": rng.normal(size=shape).astype(dtype),
    }


def _values_and_gradients(fn, inputs, training):
    """`(y, mean, variance)` of `fn` and the gradients of `sum(y * cotangent)` w.r.t. each of NAMES
    (zeros where one does not reach the output), as NumPy arrays, on the current backend."""
    args = [inputs[name] for name in NAMES]
    cotangent = inputs["cotangent"]

    def run(x, gamma, beta, bias, mean, variance):
        if training:
            return fn(x, gamma, beta, EPSILON, bias=bias, relu=True)
        return fn(x, gamma, beta, EPSILON, mean, variance, bias=bias, relu=True)

    return outputs_and_gradients(run, args, cotangent)


def _numpy_batch_norm(inputs, training):
    x = inputs["x"].astype("float64") + inputs["bias"]
    if training:
        mean, variance = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    else:
        mean, variance = inputs["mean"], inputs["variance"]
    y = (x - mean) * inputs["gamma"] / np.sqrt(variance + EPSILON) + inputs["beta"]
    return np.maximum(y, 0.0), mean, variance


@pytest.mark.parametrize("training", [True, False], ids=["training", "evaluation"])
def test_batch_norm_equals_the_reference_in_values_and_gradients(training):
    inputs = _inputs()
    (y, mean, variance), grads = _values_and_gradients(batch_norm, inputs, training)
    (y_ref, mean_ref, variance_ref), grads_ref = _values_and_gradients(reference_batch_norm, inputs, training)
    for got, expected in zip((y, mean, variance), (y_ref, mean_ref, variance_ref)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    for name, got, expected in zip(NAMES, grads, grads_ref):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=name)
    # Both are right, not only equal (on TensorFlow and JAX batch_norm is the reference).
    for got, expected in zip((y_ref, mean_ref, variance_ref), _numpy_batch_norm(inputs, training)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # The bias cancels in training: its gradient is zero; the statistics carry none.
    if training:
        np.testing.assert_allclose(grads[NAMES.index("bias")], 0.0, atol=1e-5)
        assert not np.any(grads[NAMES.index("mean")]) and not np.any(grads[NAMES.index("variance")])


@pytest.mark.parametrize("training", [True, False], ids=["training", "evaluation"])
def test_without_bias_relu_gamma_or_beta(training):
    inputs = _inputs(seed=1)
    x = inputs["x"]
    stats = () if training else (inputs["mean"], inputs["variance"])
    y, mean, variance = batch_norm(x, None, None, EPSILON, *stats)
    y_ref, mean_ref, variance_ref = reference_batch_norm(x, None, None, EPSILON, *stats)
    for got, expected in zip((y, mean, variance), (y_ref, mean_ref, variance_ref)):
        np.testing.assert_allclose(to_numpy(got), to_numpy(expected), rtol=1e-5, atol=1e-5)
    assert np.any(to_numpy(y) < 0)  # no ReLU


def _in_bfloat16(fn):
    """`fn` on bfloat16 activations with float32 vectors (mixed precision); `y` back in float32."""

    def wrapped(x, gamma, beta, epsilon, *statistics, bias=None, relu=False):
        y, mean, variance = fn(ops.cast(x, "bfloat16"), gamma, beta, epsilon, *statistics, bias=bias, relu=relu)
        assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
        assert keras.backend.standardize_dtype(mean.dtype) == "float32"
        return ops.cast(y, "float32"), mean, variance

    return wrapped


def _relative_error(got, expected):
    return float(np.linalg.norm(got - expected) / max(np.linalg.norm(expected), 1e-12))


@pytest.mark.parametrize("training", [True, False], ids=["training", "evaluation"])
def test_bfloat16_activations_keep_float32_statistics(training):
    """Mixed precision: on PyTorch the fused kernel (bfloat16 in and out, float32 statistics and
    vectors), elsewhere the reference. `y` and every gradient agree with the reference to 2e-2
    relative (L2; bfloat16 keeps 8 significant bits, and the two round at different places),
    the statistics to 1e-5 (both float32, from the same bfloat16 input)."""
    inputs = _inputs(seed=3, shape=(8, 6, 5, 4))
    (y, mean, variance), grads = _values_and_gradients(_in_bfloat16(batch_norm), inputs, training)
    (y_ref, mean_ref, variance_ref), grads_ref = _values_and_gradients(
        _in_bfloat16(reference_batch_norm), inputs, training
    )
    assert _relative_error(y, y_ref) < 2e-2
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(variance, variance_ref, rtol=1e-5, atol=1e-5)
    for name, got, expected in zip(NAMES, grads, grads_ref):
        if name == "bias" and training:  # cancels: zero up to rounding on both sides
            assert np.abs(got).max() < 5e-2 and np.abs(expected).max() < 5e-2, name
        elif np.any(expected):
            assert _relative_error(got, expected) < 2e-2, name
        else:
            assert not np.any(got), name
    # And both are right: against float64 NumPy, to bfloat16's rounding.
    expected_y = _numpy_batch_norm(inputs, training)[0]
    assert _relative_error(y, expected_y) < 2e-2 and _relative_error(y_ref, expected_y) < 2e-2


@pytest.mark.parametrize("training", [True, False], ids=["training", "evaluation"])
def test_batch_norm_relu_equals_keras_batch_normalization(training):
    """The s/t networks' batch norms: the values and moving averages of Keras' own layer."""
    inputs = _inputs(seed=2)
    ours = keras.layers.BatchNormalization(momentum=0.9, epsilon=EPSILON)
    theirs = keras.layers.BatchNormalization(momentum=0.9, epsilon=EPSILON)
    for layer in (ours, theirs):
        layer.build(inputs["x"].shape)
        layer.set_weights([inputs["gamma"], inputs["beta"], inputs["mean"], inputs["variance"]])
    got = batch_norm_relu(ours, inputs["x"], training, bias=inputs["bias"])
    expected = ops.relu(theirs(inputs["x"] + inputs["bias"], training=training))
    np.testing.assert_allclose(to_numpy(got), to_numpy(expected), rtol=1e-4, atol=1e-4)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


TF_DISTRIBUTED = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]  # two logical devices, before TensorFlow initializes
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from keras_realnvp.backend.batch_norm import batch_norm, reference_batch_norm
inputs = {k: np.asarray(v, "float32") for k, v in json.loads(sys.argv[1]).items()}
vectors = [tf.constant(inputs[k]) for k in ("gamma", "beta", "bias", "mean", "variance")]

def step(x, cotangent, fn, training):
    gamma, beta, bias, mean, variance = vectors
    watched = [x, gamma, beta, bias, mean, variance]
    with tf.GradientTape() as tape:
        tape.watch(watched)
        stats = () if training else (mean, variance)
        y, m, v = fn(x, gamma, beta, 1e-4, *stats, bias=bias, relu=True)
        total = tf.reduce_sum(y * cotangent)
    return [y, m, v] + tape.gradient(total, watched, unconnected_gradients=tf.UnconnectedGradients.ZERO)

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {"replicas": strategy.num_replicas_in_sync}
for training in (True, False):
    for name, fn in (("fused", batch_norm), ("reference", reference_batch_norm)):
        def split(context):
            half = inputs["x"].shape[0] // 2
            rows = slice(context.replica_id_in_sync_group * half, (context.replica_id_in_sync_group + 1) * half)
            return tf.constant(inputs["x"][rows]), tf.constant(inputs["cotangent"][rows])
        parts = strategy.experimental_distribute_values_from_function(split)
        run = tf.function(lambda parts: strategy.run(lambda p: step(p[0], p[1], fn, training), args=(parts,)))
        results = [strategy.experimental_local_results(r) for r in run(parts)]
        y = np.concatenate([t.numpy() for t in results[0]])
        grads = [np.concatenate([t.numpy() for t in results[3]])]  # x: each replica its rows
        grads += [sum(t.numpy() for t in r) for r in results[4:]]  # vectors: summed over the replicas
        replica_stats = [[t.numpy() for t in r] for r in results[1:3]]  # one value when given to both
        single = step(tf.constant(inputs["x"]), tf.constant(inputs["cotangent"]), fn, training)
        out[f"{name}-{int(training)}"] = {
            "distributed": [y.tolist(), replica_stats[0][0].tolist(), replica_stats[1][0].tolist()]
            + [g.tolist() for g in grads],
            "stats_agree": all(np.array_equal(s[0], other) for s in replica_stats for other in s[1:]),
            "single": [t.numpy().tolist() for t in single],
        }
print(json.dumps(out))
"""

JAX_DATA_PARALLEL = """
import json, sys
import jax, keras
import numpy as np
from keras import ops
from keras_realnvp.backend.batch_norm import batch_norm, reference_batch_norm
inputs = {k: np.asarray(v, "float32") for k, v in json.loads(sys.argv[1]).items()}
names = ("x", "gamma", "beta", "bias", "mean", "variance")
devices = keras.distribution.list_devices()
distribution = keras.distribution.DataParallel(devices=devices)

def run(fn, training, sharded):
    args = [inputs[k] for k in names]
    cotangent = inputs["cotangent"]
    if sharded:  # the global batch as one array split over the devices, as DataParallel feeds a step
        layout = distribution.get_data_layout(cotangent.shape)
        args[0] = keras.distribution.distribute_tensor(args[0], layout)
        cotangent = keras.distribution.distribute_tensor(cotangent, layout)

    def total(args, cotangent):
        x, gamma, beta, bias, mean, variance = args
        stats = () if training else (mean, variance)
        outputs = fn(x, gamma, beta, 1e-4, *stats, bias=bias, relu=True)
        return ops.sum(outputs[0] * cotangent), outputs

    with distribution.scope():
        grads, outputs = jax.jit(jax.grad(total, has_aux=True))(args, cotangent)
    shards = len(outputs[0].sharding.device_set)
    return [np.asarray(t).tolist() for t in (*outputs, *grads)], shards

out = {"devices": len(devices)}
for training in (True, False):
    for name, fn in (("fused", batch_norm), ("reference", reference_batch_norm)):
        (distributed, shards), (single, _) = run(fn, training, True), run(fn, training, False)
        out[f"{name}-{int(training)}"] = {"distributed": distributed, "single": single, "shards": shards}
print(json.dumps(out))
"""


def _check_distributed(outputs):
    for key in ("fused-1", "fused-0", "reference-1", "reference-0"):
        result = outputs[key]
        assert len(result["distributed"]) == len(result["single"]) == 3 + len(NAMES)
        for label, got, expected in zip(("y", "mean", "variance", *NAMES), result["distributed"], result["single"]):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=f"{key} {label}")
    for training in ("1", "0"):
        fused, reference = outputs[f"fused-{training}"], outputs[f"reference-{training}"]
        for got, expected in zip(fused["distributed"], reference["distributed"]):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def _serialized_inputs():
    return json.dumps({k: v.tolist() for k, v in _inputs(shape=(8, 3, 3, 4)).items()})


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute runs on TensorFlow only")
def test_mirrored_strategy_on_two_devices_normalizes_with_the_global_batch():
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run([sys.executable, "-c", TF_DISTRIBUTED, _serialized_inputs()], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout.strip().splitlines()[-1])
    assert outputs["replicas"] == 2
    assert outputs["fused-1"]["stats_agree"] and outputs["reference-1"]["stats_agree"]
    _check_distributed(outputs)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="keras.distribution.DataParallel runs on JAX only")
def test_data_parallel_on_two_devices_normalizes_with_the_global_batch():
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()
    env = {**os.environ, "XLA_FLAGS": flags, "KERAS_BACKEND": "jax"}
    result = subprocess.run([sys.executable, "-c", JAX_DATA_PARALLEL, _serialized_inputs()], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout.strip().splitlines()[-1])
    assert outputs["devices"] == 2 and outputs["fused-1"]["shards"] == 2
    _check_distributed(outputs)
