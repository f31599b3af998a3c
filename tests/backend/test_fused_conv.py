"""`keras_realnvp.backend.fused_conv` and the folded evaluation of `CouplingResNet`.

- `conv2d` (on PyTorch in inference: oneDNN's convolution with its bias, then the sum and the
  ReLU in place) equals its `keras.ops` reference to 1e-5 in float32, for 1x1 and 3x3 kernels,
  with and without each post-operation, on every backend; on PyTorch the in-place path really
  runs there (`fuses` is true under `torch.no_grad()`).
- In-place operations keep no gradient, so where a gradient is recorded `conv2d` must be the
  reference: on PyTorch `fuses` is false with grad enabled, and on every backend the gradient
  of `conv2d` with respect to its input equals the one NumPy computes by hand.
- The reference computes a 1x1 convolution as a matrix product over the channels (for XLA's
  memory): its values and its gradients with respect to the input and the kernel equal those
  of `ops.conv` to 1e-5, and NumPy's.
- `CouplingResNet.folded_call` (batch norms folded into the convolutions) equals the plain
  evaluation path to 1e-5 on every backend, with moving statistics far from their initial
  values, conditional or not, with 0 and 2 blocks; on PyTorch without a gradient,
  `net(x, training=False)` takes it, and with a gradient or a mixed policy it does not.
"""

import keras
import numpy as np
import pytest
from helpers import gradient, to_numpy
from keras import ops

from keras_realnvp.backend import fused_conv
from keras_realnvp.networks.coupling_resnet import CouplingResNet

TORCH = keras.backend.backend() == "torch"


def _no_grad():
    """`torch.no_grad()` on PyTorch (where inference runs under it), else nothing."""
    if TORCH:
        import torch

        return torch.no_grad()
    import contextlib

    return contextlib.nullcontext()


def _tensor(a):
    if TORCH:
        import torch

        # NHWC views of channels_last memory, the package's activations on PyTorch.
        t = torch.tensor(a)
        if t.ndim == 4:
            t = t.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1)
        return t
    return ops.convert_to_tensor(a)


@pytest.mark.parametrize("size", [1, 3])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("add", [False, True])
@pytest.mark.parametrize("relu", [False, True])
def test_conv2d_equals_the_reference(size, bias, add, relu):
    rng = np.random.default_rng(size + 2 * bias + 4 * add + 8 * relu)
    x = _tensor(rng.normal(size=(3, 7, 6, 5)).astype("float32"))
    kernel = _tensor(rng.normal(size=(size, size, 5, 8)).astype("float32"))
    b = _tensor(rng.normal(size=8).astype("float32")) if bias else None
    other = _tensor(rng.normal(size=(3, 7, 6, 8)).astype("float32")) if add else None
    with _no_grad():
        assert fused_conv.fuses(x, kernel, b, other) == TORCH  # the in-place path runs on PyTorch
        got = to_numpy(fused_conv.conv2d(x, kernel, b, add=other, relu=relu))
        expected = to_numpy(fused_conv.reference_conv2d(x, kernel, b, add=other, relu=relu))
    assert got.shape == (3, 7, 6, 8)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    if relu:
        assert got.min() == 0.0 and (got > 0).mean() > 0.2
    # Against NumPy, independently of Keras' conv: one output position away from the border.
    xs, ks = to_numpy(x), to_numpy(kernel)
    pad = size // 2
    window = xs[:, 3 - pad : 3 + pad + 1, 2 - pad : 2 + pad + 1, :]
    manual = np.einsum("nijc,ijco->no", window, ks)
    manual = manual + (to_numpy(b) if bias else 0) + (to_numpy(other)[:, 3, 2] if add else 0)
    manual = np.maximum(manual, 0) if relu else manual
    np.testing.assert_allclose(got[:, 3, 2], manual, rtol=1e-4, atol=1e-4)


def test_conv2d_is_the_differentiable_reference_where_a_gradient_is_recorded():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 5, 3)).astype("float32")
    kernel = rng.normal(size=(3, 3, 3, 4)).astype("float32")
    if TORCH:
        import torch

        xt = torch.tensor(x, requires_grad=True)
        assert not fused_conv.fuses(xt, torch.tensor(kernel))
        assert fused_conv.conv2d(xt, torch.tensor(kernel), relu=True).grad_fn is not None
    else:
        assert not fused_conv.fuses(x, kernel)
    grad = gradient(lambda v: fused_conv.conv2d(v, ops.convert_to_tensor(kernel), relu=True), x)
    # d sum(relu(conv(x, k))) / dx, by NumPy: the kernel flipped over the active outputs.
    y = np.maximum(to_numpy(fused_conv.reference_conv2d(x, kernel)), 0)
    active = (y > 0).astype("float32")
    padded = np.zeros((2, 7, 7, 3), "float32")
    for i in range(3):
        for j in range(3):
            padded[:, i : i + 5, j : j + 5, :] += np.einsum("nhwo,co->nhwc", active, kernel[i, j])
    np.testing.assert_allclose(grad, padded[:, 1:6, 1:6, :], rtol=1e-5, atol=1e-5)


def test_a_1x1_reference_convolution_is_the_matrix_product_with_the_gradients_of_a_convolution():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 6, 5, 7)).astype("float32")
    kernel = rng.normal(size=(1, 1, 7, 4)).astype("float32")
    weights = rng.normal(size=(3, 6, 5, 4)).astype("float32")  # a loss that weighs every output
    expected = np.einsum("nhwc,co->nhwo", x, kernel[0, 0])
    np.testing.assert_allclose(to_numpy(fused_conv.reference_conv2d(x, kernel)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        to_numpy(fused_conv.reference_conv2d(x, kernel)),
        to_numpy(ops.conv(x, kernel, padding="same")), rtol=1e-5, atol=1e-5,
    )

    def product_path(v, k):
        return fused_conv.reference_conv2d(v, k) * ops.convert_to_tensor(weights)

    def conv_path(v, k):
        return ops.conv(v, k, padding="same") * ops.convert_to_tensor(weights)

    # d/dx: the kernel applied back to the weights; d/dkernel: x against the weights.
    for path in (product_path, conv_path):
        np.testing.assert_allclose(
            gradient(lambda v, path=path: path(v, ops.convert_to_tensor(kernel)), x),
            np.einsum("nhwo,co->nhwc", weights, kernel[0, 0]), rtol=1e-5, atol=1e-5,
        )
        np.testing.assert_allclose(
            gradient(lambda k, path=path: path(ops.convert_to_tensor(x), k), kernel)[0, 0],
            np.einsum("nhwc,nhwo->co", x, weights), rtol=1e-5, atol=1e-4,
        )


def test_float64_is_not_fused_and_equals_the_reference():
    rng = np.random.default_rng(1)
    x = _tensor(rng.normal(size=(2, 4, 4, 3)))
    kernel = _tensor(rng.normal(size=(3, 3, 3, 2)))
    with _no_grad():
        assert not fused_conv.fuses(x, kernel)
        np.testing.assert_allclose(
            to_numpy(fused_conv.conv2d(x, kernel)), to_numpy(fused_conv.reference_conv2d(x, kernel)), rtol=1e-12
        )


def _trained_looking(net, rng):
    """Moving statistics, scales, shifts and biases far from their initial values."""
    for v in net.weights:
        name = v.path.split("/")[-1]
        if name in ("moving_mean", "beta", "bias"):
            v.assign(rng.normal(size=v.shape).astype("float32") * 0.3)
        elif name in ("moving_variance", "gamma"):
            v.assign((rng.random(size=v.shape) * 2.0 + 0.3).astype("float32"))
        elif name == "scale":
            v.assign((rng.random(size=v.shape) + 0.5).astype("float32"))


@pytest.mark.parametrize("num_blocks", [0, 2])
@pytest.mark.parametrize("label_dim", [None, 3])
def test_the_folded_evaluation_equals_the_plain_one(num_blocks, label_dim):
    rng = np.random.default_rng(num_blocks + (label_dim or 0))
    net = CouplingResNet(filters=8, num_blocks=num_blocks, output_channels=6, label_dim=label_dim)
    x = _tensor(rng.normal(size=(4, 6, 6, 4)).astype("float32"))
    labels = rng.random(size=(4, 3)).astype("float32") if label_dim else None
    net(x, labels)
    _trained_looking(net, rng)
    # The plain path: with a gradient recorded on PyTorch (no fusion), the plain call elsewhere.
    plain = to_numpy(net(x, labels, training=False))
    with _no_grad():
        folded = to_numpy(net.folded_call(x, labels))
    assert np.abs(plain).max() > 0.5  # the head's output is not near zero: the test can fail
    np.testing.assert_allclose(folded, plain, rtol=1e-5, atol=1e-5)


def test_evaluation_takes_the_folded_path_exactly_where_the_kernel_fuses(monkeypatch):
    rng = np.random.default_rng(3)
    net = CouplingResNet(filters=8, num_blocks=1, output_channels=6)
    x = _tensor(rng.normal(size=(2, 4, 4, 4)).astype("float32"))
    net(x)
    calls = []
    original = CouplingResNet.folded_call

    def spy(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CouplingResNet, "folded_call", spy)
    with _no_grad():
        net(x, training=False)
        assert len(calls) == int(TORCH)
        net(x, training=True)  # training: batch statistics, never folded
        assert len(calls) == int(TORCH)
    net(x, training=False)  # a gradient recorded on PyTorch: the plain path
    assert len(calls) == int(TORCH)
    mixed = CouplingResNet(filters=8, num_blocks=1, output_channels=6, dtype="mixed_bfloat16")
    with _no_grad():
        mixed(x, training=False)
    assert len(calls) == int(TORCH)


def test_a_multiscale_model_evaluates_and_samples_the_same_folded_or_not(monkeypatch):
    # Checkerboard and channel couplings: the channel couplings' networks read a channel slice
    # (a strided view on PyTorch), and sampling runs every network in the inverse direction.
    from keras_realnvp import RealNVP

    model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=8, num_blocks=2, seed=0)
    rng = np.random.default_rng(7)
    images = rng.uniform(0.0, 256.0, (3, 8, 8, 3)).astype("float32")
    model(images)
    for layer in model._flatten_layers():
        if isinstance(layer, CouplingResNet):
            _trained_looking(layer, rng)
    latents = [rng.normal(size=(3, *shape)).astype("float32") for shape in model.latent_shapes()]
    calls = []
    original = fused_conv._torch_conv2d
    monkeypatch.setattr(fused_conv, "_torch_conv2d", lambda *args: calls.append(1) or original(*args))
    folded = [to_numpy(model.bits_per_dim(images)), to_numpy(model.decode(latents))]
    # 10 couplings whose networks have 9 convolutions (stem, first skip, head, 3 per block), in
    # evaluation and in sampling: all fused on PyTorch, none elsewhere.
    assert len(calls) == (2 * 10 * 9 if TORCH else 0)
    monkeypatch.setattr(CouplingResNet, "_folds", lambda self, x: False)
    plain = [to_numpy(model.bits_per_dim(images)), to_numpy(model.decode(latents))]
    assert np.all(np.isfinite(plain[0])) and np.ptp(plain[1]) > 1.0
    np.testing.assert_allclose(folded[0], plain[0], rtol=1e-5, atol=1e-5)  # bits/dim
    # Pixel values: a hundredth of a pixel level. The inverse logit multiplies a difference in
    # its input by up to 256 / 0.9 / 4 = 71; float32 rounding through ten inverse couplings and
    # it reached 4.3e-3 of a level (one pixel of 576) on an Intel Xeon with AMX, 2026-12-04.
    np.testing.assert_allclose(folded[1], plain[1], rtol=1e-4, atol=1e-2)
