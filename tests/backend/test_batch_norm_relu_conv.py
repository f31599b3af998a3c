"""`keras_realnvp.backend.batch_norm_relu_conv`: equal to its `keras.ops` reference, keeping less.

Values, returned statistics and the gradients with respect to the input, gamma, beta, the folded
bias and the kernel agree with `reference_batch_norm_relu_conv` to 1e-5 in float32 (3x3 and 1x1
kernels), and to bfloat16's rounding in mixed precision, on every backend; the reference is
checked against NumPy. On PyTorch the backward pass keeps no activation-sized tensor but the
input. Under `tf.distribute` (two logical CPU devices, in a subprocess) the statistics are the
global batch's and values and gradients equal a single device's, and the same under JAX's
`DataParallel` (two host devices). At the network level, a `CouplingResNet`'s training output,
gradients and moving averages equal those of the same network on the reference. """

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import outputs_and_gradients, to_numpy
from keras import ops

from keras_realnvp.backend.batch_norm_relu_conv import batch_norm_relu_conv, reference_batch_norm_relu_conv
from keras_realnvp.networks import coupling_resnet
from keras_realnvp.networks.coupling_resnet import CouplingResNet

EPSILON = 1e-4
NAMES = ("x", "gamma", "beta", "bias", "kernel")


def _inputs(dtype="float32", seed=0, shape=(6, 5, 4, 3), size=3, filters=4):
    rng = np.random.default_rng(seed)
    channels = shape[-1]
    return {
        "x": (rng.normal(size=shape) * 2.0 + 0.5).astype(dtype),
        "gamma": rng.normal(size=channels).astype(dtype),
        "beta": rng.normal(size=channels).astype(dtype),
        "bias": rng.normal(size=channels).astype(dtype),
        "kernel": (rng.normal(size=(size, size, channels, filters)) * 0.3).astype(dtype),
        "cotangent": rng.normal(size=(*shape[:-1], filters)).astype(dtype),
    }


def _values_and_gradients(fn, inputs, compute_dtype=None):
    """`(y, mean, variance)` of `fn` and the gradients of `sum(y * cotangent)` w.r.t. each of NAMES,
    as float32 NumPy arrays. With `compute_dtype`, `x` and the kernel are cast to it first."""
    args = [inputs[name] for name in NAMES]
    cotangent = inputs["cotangent"]

    def run(x, gamma, beta, bias, kernel):
        if compute_dtype is not None:
            x, kernel = ops.cast(x, compute_dtype), ops.cast(kernel, compute_dtype)
        y, mean, variance = fn(x, gamma, beta, EPSILON, kernel, bias=bias)
        return ops.cast(y, "float32"), mean, variance

    return outputs_and_gradients(run, args, cotangent)


def _numpy_forward(inputs):
    """float64 NumPy: relu(batch_norm(x + bias)) convolved ("same" padding), and the statistics."""
    x = inputs["x"].astype("float64") + inputs["bias"]
    mean, variance = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    a = np.maximum((x - mean) * inputs["gamma"] / np.sqrt(variance + EPSILON) + inputs["beta"], 0.0)
    kernel = inputs["kernel"].astype("float64")
    k = kernel.shape[0]
    padded = np.pad(a, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    height, width = a.shape[1:3]
    y = sum(
        np.einsum("nhwc,co->nhwo", padded[:, i : i + height, j : j + width], kernel[i, j])
        for i in range(k)
        for j in range(k)
    )
    return y, mean, variance


@pytest.mark.parametrize("size", [3, 1], ids=["3x3", "1x1"])
def test_equals_the_reference_in_values_and_gradients(size):
    inputs = _inputs(size=size)
    (y, mean, variance), grads = _values_and_gradients(batch_norm_relu_conv, inputs)
    (y_ref, mean_ref, variance_ref), grads_ref = _values_and_gradients(reference_batch_norm_relu_conv, inputs)
    for label, got, expected in zip(("y", "mean", "variance"), (y, mean, variance), (y_ref, mean_ref, variance_ref)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=label)
    for name, got, expected in zip(NAMES, grads, grads_ref):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=name)
        if name != "bias":
            assert np.abs(expected).max() > 1e-2, name  # a gradient that reaches the output
    # The bias cancels in the normalization: a zero gradient, on both.
    np.testing.assert_allclose(grads[NAMES.index("bias")], 0.0, atol=1e-5)
    # And the reference is right, not only equal.
    for got, expected in zip((y_ref, mean_ref, variance_ref), _numpy_forward(inputs)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_without_bias_gamma_or_beta():
    inputs = _inputs(seed=1)
    x, kernel = inputs["x"], inputs["kernel"]
    got = batch_norm_relu_conv(x, None, None, EPSILON, kernel)
    expected = reference_batch_norm_relu_conv(x, None, None, EPSILON, kernel)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-5, atol=1e-5)


def _relative_error(got, expected):
    return float(np.linalg.norm(got - expected) / max(np.linalg.norm(expected), 1e-12))


def test_bfloat16_activations_keep_float32_statistics():
    """Mixed precision: bfloat16 `x` and kernel, float32 vectors and statistics. `y` and every
    gradient agree with the reference to 2e-2 relative (L2; bfloat16 keeps 8 significant bits),
    the statistics to 1e-5."""
    inputs = _inputs(seed=3, shape=(8, 6, 5, 4))
    (y, mean, variance), grads = _values_and_gradients(batch_norm_relu_conv, inputs, "bfloat16")
    (y_ref, mean_ref, variance_ref), grads_ref = _values_and_gradients(
        reference_batch_norm_relu_conv, inputs, "bfloat16"
    )
    assert _relative_error(y, y_ref) < 2e-2
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(variance, variance_ref, rtol=1e-5, atol=1e-5)
    for name, got, expected in zip(NAMES, grads, grads_ref):
        if name == "bias":  # cancels: zero up to rounding on both sides
            assert np.abs(got).max() < 5e-2 and np.abs(expected).max() < 5e-2, name
        else:
            assert _relative_error(got, expected) < 2e-2, name
    assert _relative_error(y, _numpy_forward(inputs)[0]) < 2e-2


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="counts the tensors PyTorch's autograd saves")
def test_the_backward_pass_keeps_no_activation_but_the_input():
    import torch

    inputs = _inputs(shape=(4, 8, 8, 6), filters=6)
    activation_size = inputs["x"].size

    def saved_activations(fn):
        saved = []

        def pack(t):
            if t.numel() >= activation_size:
                saved.append(t)
            return t

        tensors = [torch.tensor(inputs[name], requires_grad=True) for name in NAMES]
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            y, _, _ = fn(*tensors[:3], EPSILON, tensors[4], bias=tensors[3])
        return {t.data_ptr() for t in saved}

    # The reference keeps x and relu(batch_norm(x)) (the ReLU's and the convolution's input).
    assert len(saved_activations(reference_batch_norm_relu_conv)) == 2
    assert len(saved_activations(batch_norm_relu_conv)) == 1


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="PyTorch's recomputation of the activation")
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "float16"])
@pytest.mark.parametrize("channels_last", [True, False])
def test_the_recomputed_activation_is_the_forward_kernels(dtype, channels_last):
    """The backward pass's `relu(batch_norm(x))`, from the forward kernel's saved statistics,
    against the forward kernel's own output, element by element: within 4 units of `dtype`'s
    rounding of `|x * scale| + |shift|` (the two kernels order their arithmetic differently), and
    in `x`'s dtype and memory format. A large epsilon, so that mishandling it would show."""
    import torch

    from keras_realnvp.backend.batch_norm_relu_conv import _recomputed_activation

    torch.manual_seed(0)
    x = (torch.randn(8, 32, 16, 16) * 3 + 1).to(getattr(torch, dtype))
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    x = x.contiguous(memory_format=memory_format)
    vector_dtype = torch.float64 if dtype == "float64" else torch.float32
    gamma, beta = torch.rand(32, dtype=vector_dtype) + 0.5, torch.randn(32, dtype=vector_dtype)
    epsilon = 0.5
    a, mean, inverse_std = torch.native_batch_norm(x, gamma, beta, None, None, True, 0.0, epsilon)
    got = _recomputed_activation(x, gamma, beta, mean, inverse_std)
    assert got.dtype == x.dtype and got.is_contiguous(memory_format=memory_format)
    scale = (inverse_std * gamma)[None, :, None, None]
    shift = (beta - mean * inverse_std * gamma)[None, :, None, None]
    magnitude = (x.to(vector_dtype) * scale).abs() + shift.abs()
    bound = 4 * torch.finfo(x.dtype).eps * magnitude
    assert bool(((got.to(vector_dtype) - a.relu().to(vector_dtype)).abs() <= bound).all())


def test_a_coupling_resnet_trains_as_on_the_reference(monkeypatch):
    """Output, gradients of every weight and moving averages of a training call, against the same
    network (same weights) whose batch norms and convolutions run the reference."""
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(4).normal(size=(4, 6, 6, 3)).astype("float32")
    cotangent = np.random.default_rng(5).normal(size=(4, 6, 6, 4)).astype("float32")
    nets = [CouplingResNet(filters=6, num_blocks=2, output_channels=4) for _ in range(2)]
    for net in nets:
        net.build(x.shape)
    nets[1].set_weights(nets[0].get_weights())
    initial_averages = [to_numpy(v) for v in nets[0].non_trainable_variables]

    def run(net):
        values = [v.value for v in net.trainable_variables]
        backend = keras.backend.backend()
        if backend == "jax":
            import jax

            def total(values):
                out, _ = net.stateless_call(values, [v.value for v in net.non_trainable_variables], x, training=True)
                return ops.sum(out * cotangent), out

            (grads, out) = jax.grad(total, has_aux=True)(values)
            _, non_trainable = net.stateless_call(
                values, [v.value for v in net.non_trainable_variables], x, training=True
            )
            return to_numpy(out), [to_numpy(g) for g in grads], [to_numpy(v) for v in non_trainable]
        if backend == "torch":
            out = net(x, training=True)
            (out * ops.convert_to_tensor(cotangent)).sum().backward()
            grads = [v.value.grad for v in net.trainable_variables]
        else:
            import tensorflow as tf

            with tf.GradientTape() as tape:
                out = net(x, training=True)
                total = tf.reduce_sum(out * cotangent)
            grads = tape.gradient(total, net.trainable_variables)
        return to_numpy(out), [to_numpy(g) for g in grads], [to_numpy(v) for v in net.non_trainable_variables]

    out, grads, averages = run(nets[0])
    monkeypatch.setattr(coupling_resnet, "batch_norm_relu_conv", reference_batch_norm_relu_conv)
    out_ref, grads_ref, averages_ref = run(nets[1])
    np.testing.assert_allclose(out, out_ref, rtol=1e-5, atol=1e-5)
    for variable, got, expected in zip(nets[0].trainable_variables, grads, grads_ref):
        scale = max(float(np.abs(expected).max()), 1.0)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * scale, err_msg=variable.path)
    for got, expected in zip(averages, averages_ref):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # The training call moved every moving average (they start at 0 and 1).
    for before, after in zip(initial_averages, averages):
        assert np.abs(after - before).max() > 1e-4


TF_DISTRIBUTED = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]  # two logical devices, before TensorFlow initializes
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from keras_realnvp.backend.batch_norm_relu_conv import batch_norm_relu_conv, reference_batch_norm_relu_conv
inputs = {k: np.asarray(v, "float32") for k, v in json.loads(sys.argv[1]).items()}
vectors = [tf.constant(inputs[k]) for k in ("gamma", "beta", "bias", "kernel")]

def step(x, cotangent, fn):
    gamma, beta, bias, kernel = vectors
    watched = [x, gamma, beta, bias, kernel]
    with tf.GradientTape() as tape:
        tape.watch(watched)
        y, m, v = fn(x, gamma, beta, 1e-4, kernel, bias=bias)
        total = tf.reduce_sum(y * cotangent)
    return [y, m, v] + tape.gradient(total, watched, unconnected_gradients=tf.UnconnectedGradients.ZERO)

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {"replicas": strategy.num_replicas_in_sync}
for name, fn in (("recomputing", batch_norm_relu_conv), ("reference", reference_batch_norm_relu_conv)):
    def split(context):
        half = inputs["x"].shape[0] // 2
        rows = slice(context.replica_id_in_sync_group * half, (context.replica_id_in_sync_group + 1) * half)
        return tf.constant(inputs["x"][rows]), tf.constant(inputs["cotangent"][rows])
    parts = strategy.experimental_distribute_values_from_function(split)
    run = tf.function(lambda parts: strategy.run(lambda p: step(p[0], p[1], fn), args=(parts,)))
    results = [strategy.experimental_local_results(r) for r in run(parts)]
    y = np.concatenate([t.numpy() for t in results[0]])
    grads = [np.concatenate([t.numpy() for t in results[3]])]  # x: each replica its rows
    grads += [sum(t.numpy() for t in r) for r in results[4:]]  # the rest: summed over the replicas
    stats = [[t.numpy() for t in r] for r in results[1:3]]
    single = step(tf.constant(inputs["x"]), tf.constant(inputs["cotangent"]), fn)
    out[name] = {
        "distributed": [y.tolist(), stats[0][0].tolist(), stats[1][0].tolist()] + [g.tolist() for g in grads],
        "stats_agree": all(np.array_equal(s[0], other) for s in stats for other in s[1:]),
        "single": [t.numpy().tolist() for t in single],
    }
print(json.dumps(out))
"""


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute runs on TensorFlow only")
def test_mirrored_strategy_on_two_devices_normalizes_with_the_global_batch():
    serialized = json.dumps({k: v.tolist() for k, v in _inputs(shape=(8, 3, 3, 4)).items()})
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run([sys.executable, "-c", TF_DISTRIBUTED, serialized], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout.strip().splitlines()[-1])
    assert outputs["replicas"] == 2
    assert outputs["recomputing"]["stats_agree"] and outputs["reference"]["stats_agree"]
    _check_distributed(outputs)


def _check_distributed(outputs):
    """Each function's distributed values and gradients equal its single-device ones, and the two
    functions' distributed ones each other's."""
    labels = ("y", "mean", "variance", *NAMES)
    for name in ("recomputing", "reference"):
        for label, got, expected in zip(labels, outputs[name]["distributed"], outputs[name]["single"]):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=f"{name} {label}")
    for label, got, expected in zip(labels, outputs["recomputing"]["distributed"], outputs["reference"]["distributed"]):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=label)


JAX_DATA_PARALLEL = """
import json, sys
import jax, keras
import numpy as np
from keras import ops
from keras_realnvp.backend.batch_norm_relu_conv import batch_norm_relu_conv, reference_batch_norm_relu_conv
inputs = {k: np.asarray(v, "float32") for k, v in json.loads(sys.argv[1]).items()}
names = ("x", "gamma", "beta", "bias", "kernel")
devices = keras.distribution.list_devices()
distribution = keras.distribution.DataParallel(devices=devices)

def run(fn, sharded):
    args = [inputs[k] for k in names]
    cotangent = inputs["cotangent"]
    if sharded:  # the global batch as one array split over the devices, as DataParallel feeds a step
        layout = distribution.get_data_layout(cotangent.shape)
        args[0] = keras.distribution.distribute_tensor(args[0], distribution.get_data_layout(args[0].shape))
        cotangent = keras.distribution.distribute_tensor(cotangent, layout)

    def total(args, cotangent):
        x, gamma, beta, bias, kernel = args
        outputs = fn(x, gamma, beta, 1e-4, kernel, bias=bias)
        return ops.sum(outputs[0] * cotangent), outputs

    with distribution.scope():
        grads, outputs = jax.jit(jax.grad(total, has_aux=True))(args, cotangent)
    shards = len(outputs[0].sharding.device_set)
    return [np.asarray(t).tolist() for t in (*outputs, *grads)], shards

out = {"devices": len(devices)}
for name, fn in (("recomputing", batch_norm_relu_conv), ("reference", reference_batch_norm_relu_conv)):
    (distributed, shards), (single, _) = run(fn, True), run(fn, False)
    out[name] = {"distributed": distributed, "single": single, "shards": shards}
print(json.dumps(out))
"""


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="keras.distribution.DataParallel runs on JAX only")
def test_data_parallel_on_two_devices_normalizes_with_the_global_batch():
    serialized = json.dumps({k: v.tolist() for k, v in _inputs(shape=(8, 3, 3, 4)).items()})
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()
    env = {**os.environ, "XLA_FLAGS": flags, "KERAS_BACKEND": "jax"}
    result = subprocess.run([sys.executable, "-c", JAX_DATA_PARALLEL, serialized], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout.strip().splitlines()[-1])
    assert outputs["devices"] == 2
    assert outputs["recomputing"]["shards"] == outputs["reference"]["shards"] == 2
    _check_distributed(outputs)
