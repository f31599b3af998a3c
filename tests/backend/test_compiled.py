"""What the speed work must not change: compiled and eager runs compute the same thing.

Compiled here means what each backend's Keras trainer does by default (JAX: `jax.jit`,
TensorFlow: `tf.function`, PyTorch: Keras' default, which does not call `torch.compile`) and,
on TensorFlow, XLA as well; eager means `run_eagerly=True`. `torch.compile` itself is not
tested: on a 2-core CPU it takes minutes to compile even the smallest Real NVP.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import gradient, randomize_weights, to_numpy
from keras import ops

from keras_realnvp import RealNVP
from keras_realnvp.backend.compiled import compile_inference, conv_data_format
from keras_realnvp.networks import WeightNormConv2D
from keras_realnvp.networks.coupling_resnet import CouplingResNet, batch_norm_relu

ARCH = {"image_shape": (8, 8, 3), "num_scales": 2, "filters": 4, "num_blocks": 1}
# The training tests need no second scale (the inference tests keep it: several latents), and
# each compiled or eager step costs in proportion to the flow's size.
ONE_SCALE = {**ARCH, "num_scales": 1}


def _images(rng, count=8):
    return rng.uniform(0.0, 256.0, (count, *ARCH["image_shape"])).astype("float32")


def _compile_modes():
    modes = ["auto"]
    if keras.backend.backend() == "tensorflow":
        modes.append("xla")
    return modes


def _train(mode, weights, batches):
    model = RealNVP(**ONE_SCALE, seed=0)
    model.set_weights(weights)
    kwargs = {"run_eagerly": True} if mode == "eager" else {}
    if mode == "xla":
        kwargs = {"jit_compile": True}
    model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=100.0), **kwargs)
    losses = [float(model.train_on_batch(x, return_dict=True)["loss"]) for x in batches]
    return losses, [to_numpy(v) for v in model.weights], model


@pytest.mark.parametrize("mode", _compile_modes())
def test_compiled_training_gives_the_eager_loss(rng, mode):
    reference = RealNVP(**ONE_SCALE, seed=0)
    randomize_weights(reference, seed=1)
    weights = reference.get_weights()
    # Float images: no dequantization noise, so both runs see exactly the same data.
    batches = [_images(rng) for _ in range(2)]  # the second step also uses Adam's moments
    eager_losses, eager_weights, _ = _train("eager", weights, batches)
    losses, trained_weights, model = _train(mode, weights, batches)
    assert mode == "xla" or model.run_eagerly is False
    # The loss is in nats per image (about 1,000 here): another reduction order in float32 moves it
    # by a few ulps (measured up to 9.8e-4, i.e. 1e-6 relative); 3e-6 relative is 2e-5 bits/dim.
    np.testing.assert_allclose(losses, eager_losses, rtol=3e-6, atol=0)
    # Weights, running averages and optimizer-driven updates agree too (float32 round-off). Adam
    # turns a gradient that is zero up to round-off into a +-lr step of either sign, so a few
    # weights may differ by up to 2 lr per step (measured: 2 of 12 entries of one tensor, 1.3e-4).
    close = np.concatenate([np.ravel(np.isclose(g, e, atol=1e-4, rtol=1e-4))
                            for g, e in zip(trained_weights, eager_weights)])
    assert close.mean() > 0.99, close.mean()
    for got, expected in zip(trained_weights, eager_weights):
        np.testing.assert_allclose(got, expected, atol=2 * 2 * 1e-3, rtol=0)


def test_compiled_inference_matches_eager_and_sees_new_weights(rng):
    model = RealNVP(**ARCH, seed=0)
    randomize_weights(model, seed=2)
    x = _images(rng, 3)

    def outputs():
        latents = model.encode(x)
        return [model.log_prob(x), *latents, model.decode(latents), model.sample(2, seed=5)]

    compiled = [to_numpy(t) for t in outputs()]
    model.run_eagerly = True
    eager = [to_numpy(t) for t in outputs()]
    for got, expected in zip(compiled, eager):
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-5)
    model.run_eagerly = False
    # The compiled functions read the variables at every call (nothing baked in).
    before = to_numpy(model.log_prob(x))
    randomize_weights(model, seed=3)
    after = to_numpy(model.log_prob(x))
    assert np.abs(after - before).max() > 1e-3
    model.run_eagerly = True
    np.testing.assert_allclose(after, to_numpy(model.log_prob(x)), atol=1e-4, rtol=1e-5)


def test_inference_keeps_no_autograd_graph_and_builds_nothing_new(rng):
    model = RealNVP(**ARCH, seed=0)
    count = len(model.weights)
    log_prob = model.log_prob(_images(rng, 2))
    assert len(model.weights) == count
    if keras.backend.backend() == "torch":
        assert not log_prob.requires_grad  # no graph keeping the activations alive


def test_compile_inference_on_a_plain_layer():
    layer = keras.layers.Dense(3)
    layer.build((None, 2))
    fn = compile_inference(layer, lambda x: layer(x) * 2.0)
    x = np.ones((4, 2), "float32")
    np.testing.assert_allclose(to_numpy(fn(x)), 2.0 * to_numpy(layer(x)), rtol=1e-6)


def _batch_norm(shape):
    init = np.random.default_rng(0)
    bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-4)
    bn.build(shape)
    bn.gamma.assign(init.normal(1.0, 0.1, shape[-1]).astype("float32"))
    bn.beta.assign(init.normal(0.0, 0.1, shape[-1]).astype("float32"))
    bn.moving_mean.assign(np.linspace(-1, 1, shape[-1]).astype("float32"))
    bn.moving_variance.assign(np.linspace(0.5, 2, shape[-1]).astype("float32"))
    return bn


@pytest.mark.parametrize("training", [False, True])
def test_fused_batch_norm_relu_matches_the_keras_layer(rng, training):
    """`batch_norm_relu` gives the values, updates and gradients of `relu(bn(x + bias))`."""
    x = rng.normal(1.0, 2.0, (4, 3, 3, 5)).astype("float32")
    bias = rng.normal(size=5).astype("float32")
    weights = rng.normal(size=x.shape).astype("float32")
    reference, fused = _batch_norm(x.shape), _batch_norm(x.shape)

    def expected_fn(t):
        return ops.multiply(ops.relu(reference(ops.add(t, bias), training=training)), weights)

    def fused_fn(t):
        return ops.multiply(batch_norm_relu(fused, t, training, bias=bias), weights)

    np.testing.assert_allclose(to_numpy(fused_fn(x)), to_numpy(expected_fn(x)), atol=1e-5)
    for a, b in zip(fused.weights, reference.weights):  # the same moving-average updates
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=1e-6)
    np.testing.assert_allclose(gradient(fused_fn, x), gradient(expected_fn, x), atol=1e-4)


def _unfused_coupling_resnet(net, x, training):
    """The s/t network as its layers compute it one by one: every bias added, Keras' own BN."""
    h = net.stem(x)
    skip = net.skips[0](h)
    for i, skip_conv in enumerate(net.skips[1:]):
        bn_a, conv_a, bn_b, conv_b = net.block_layers[4 * i : 4 * i + 4]
        r = conv_a(ops.relu(bn_a(h, training=training)))
        r = conv_b(ops.relu(bn_b(r, training=training)))
        h = h + r
        skip = skip + skip_conv(h)
    return net.head(ops.relu(net.head_norm(skip, training=training)))


@pytest.mark.parametrize("training", [False, True])
def test_coupling_resnet_with_folded_biases_matches_its_layers_one_by_one(rng, training):
    """No bias is added to a feature map (they are folded into the batch norms), same result."""
    x = rng.normal(size=(4, 6, 6, 3)).astype("float32")
    net, reference = (CouplingResNet(filters=5, num_blocks=2, output_channels=4) for _ in range(2))
    net.build(x.shape)
    reference.build(x.shape)
    randomize_weights(net, seed=3, noise=0.3)  # biases far from 0, moving averages off (0, 1)
    reference.set_weights(net.get_weights())
    weights = rng.normal(size=(4, 6, 6, 4)).astype("float32")

    def fused(t):
        return ops.multiply(net(t, training=training), weights)

    def unfused(t):
        return ops.multiply(_unfused_coupling_resnet(reference, t, training), weights)

    np.testing.assert_allclose(to_numpy(fused(x)), to_numpy(unfused(x)), atol=1e-5)
    for a, b in zip(net.weights, reference.weights):  # the same moving-average updates
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=1e-5)
    np.testing.assert_allclose(gradient(fused, x), gradient(unfused, x), atol=1e-4)


def test_convolution_layout_does_not_change_results(rng):
    conv = WeightNormConv2D(6, 3)
    x = rng.normal(size=(16, 32, 32, 3)).astype("float32")
    conv.build(x.shape)
    randomize_weights(conv, seed=4)
    got = to_numpy(conv(x))
    expected = to_numpy(ops.conv(x, conv.effective_kernel(), padding="same")) + to_numpy(conv.bias)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(to_numpy(conv.convolve(x)) + to_numpy(conv.bias), got, atol=1e-6)
    assert conv_data_format() == ("channels_first" if keras.backend.backend() == "torch" else "channels_last")


def test_mixed_bfloat16_keeps_the_flow_in_float32(rng):
    float_model = RealNVP(**ONE_SCALE, seed=0)
    randomize_weights(float_model, seed=5)
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = RealNVP(**ONE_SCALE, seed=0)
    keras.config.set_dtype_policy("float32")
    model.set_weights(float_model.get_weights())
    x = _images(rng, 4)
    coupling = model.final_flow.bijectors[0]
    assert coupling.compute_dtype == "float32" and coupling.net.compute_dtype == "bfloat16"
    assert model.logit.compute_dtype == "float32" and model.final_flow.bijectors[1].compute_dtype == "float32"
    # The network's head computes s and t in float32: they carry more than bfloat16's 8 bits.
    assert coupling.net.head.compute_dtype == "float32" and coupling.net.head_norm.compute_dtype == "float32"
    channels = coupling.net.stem.direction.shape[2]
    out = to_numpy(ops.cast(coupling.net(rng.normal(size=(4, 4, 4, channels)).astype("float32")), "float32"))
    rounded = to_numpy(ops.cast(ops.cast(out, "bfloat16"), "float32"))
    assert np.mean(out != rounded) > 0.9, "s/t rounded to bfloat16"
    log_prob = model.log_prob(x)
    assert keras.backend.standardize_dtype(log_prob.dtype) == "float32"
    latents = model.encode(x)
    assert all(keras.backend.standardize_dtype(z.dtype) == "float32" for z in latents)
    # bfloat16 s/t networks change bits/dim by far less than 0.02.
    bits = to_numpy(model.bits_per_dim(x))
    np.testing.assert_allclose(bits, to_numpy(float_model.bits_per_dim(x)), atol=0.02)
    # Float pixels reach the flow unrounded through `call` (what fit and predict use): no
    # cast to bfloat16 on the way in. The result agrees with log_prob up to bfloat16
    # round-off in the networks (TensorFlow runs them differently eagerly and in graphs).
    seen = []
    forward_flow = model.forward_flow
    model.forward_flow = lambda images, **kwargs: seen.append(to_numpy(images)) or forward_flow(images, **kwargs)
    called = to_numpy(model(x))
    del model.forward_flow
    np.testing.assert_array_equal(seen[0], x)
    np.testing.assert_allclose(called, to_numpy(log_prob), rtol=2e-4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    loss = model.train_on_batch(rng.integers(0, 256, (8, 8, 8, 3)).astype("uint8"), return_dict=True)["loss"]
    assert np.isfinite(float(loss))


_PRINT_XLA_FLAGS = "import os, keras_realnvp; print(os.environ.get('XLA_FLAGS', ''))"


@pytest.mark.parametrize("user_flags", ["", "--xla_cpu_experimental_ynn_fusion_type=+reduce"])
def test_import_sets_the_xla_cpu_flag_for_jax_unless_the_user_did(user_flags):
    """`import keras_realnvp` adds XLA_CPU_FLAG on JAX (before JAX computes); a user's own value stays."""
    from keras_realnvp.backend.compiled import _XLA_CPU_FLAG_SINCE, XLA_CPU_FLAG, _jaxlib_version

    env = {**os.environ, "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen=false {user_flags}".strip()}
    completed = subprocess.run([sys.executable, "-c", _PRINT_XLA_FLAGS], env=env, capture_output=True, text=True,
                               timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    flags = completed.stdout.strip().splitlines()[-1].split()
    expected = env["XLA_FLAGS"].split()
    if keras.backend.backend() == "jax" and not user_flags and _jaxlib_version() >= _XLA_CPU_FLAG_SINCE:
        expected.append(XLA_CPU_FLAG)
    assert flags == expected
