"""`keras_realnvp.backend.weight_norm`: the weight norm's kernel, fused on PyTorch.

- `weight_normalized_kernel` (on PyTorch `torch._weight_norm`) equals its `keras.ops` reference
  and NumPy's `g * v / ||v||` to 1e-5 (float32) for 3x3 and 1x1 kernels on every backend, and
  its gradients with respect to the direction and the scale equal those of the reference and
  NumPy's analytic ones: `dL/dv = (g / ||v||) (c - v (v.c) / ||v||²)`, `dL/dg = v.c / ||v||`
  per output filter, for a cotangent `c`.
- In bfloat16 (the kernels' dtype under `mixed_bfloat16`) it stays within bfloat16's rounding
  of the float64 kernel, and keeps the dtype.
- `WeightNormConv2D` computes its kernel through it.
"""

import keras
import numpy as np
import pytest
from helpers import gradient, to_numpy
from keras import ops

from keras_realnvp.backend.weight_norm import reference_weight_normalized_kernel, weight_normalized_kernel
from keras_realnvp.networks.weight_norm_conv import WeightNormConv2D

SHAPES = [(3, 3, 5, 4), (1, 1, 6, 3)]


def _inputs(shape, seed):
    rng = np.random.default_rng(seed)
    direction = (rng.normal(size=shape) * 0.05).astype("float32")
    scale = rng.uniform(0.5, 2.0, size=shape[-1]).astype("float32")
    cotangent = rng.normal(size=shape).astype("float32")
    return direction, scale, cotangent


def _numpy_kernel_and_gradients(direction, scale, cotangent):
    v, g, c = (np.asarray(a, "float64") for a in (direction, scale, cotangent))
    axes = tuple(range(v.ndim - 1))
    norm = np.sqrt((v**2).sum(axis=axes))
    dot = (v * c).sum(axis=axes)
    kernel = v * g / norm
    grad_direction = g / norm * (c - v * dot / norm**2)
    grad_scale = dot / norm
    return kernel, grad_direction, grad_scale


@pytest.mark.parametrize("shape", SHAPES)
def test_the_kernel_and_its_gradients_equal_the_reference_and_numpy(shape):
    direction, scale, cotangent = _inputs(shape, seed=len(shape) + shape[0])
    kernel, grad_direction, grad_scale = _numpy_kernel_and_gradients(direction, scale, cotangent)
    c = ops.convert_to_tensor(cotangent)
    for fn in (weight_normalized_kernel, reference_weight_normalized_kernel):
        np.testing.assert_allclose(to_numpy(fn(direction, scale)), kernel, rtol=1e-5, atol=1e-6)
        got_direction = gradient(lambda v, fn=fn: fn(v, ops.convert_to_tensor(scale)) * c, direction)
        got_scale = gradient(lambda g, fn=fn: fn(ops.convert_to_tensor(direction), g) * c, scale)
        np.testing.assert_allclose(got_direction, grad_direction, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got_scale, grad_scale, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        to_numpy(weight_normalized_kernel(direction, scale)),
        to_numpy(reference_weight_normalized_kernel(direction, scale)), rtol=1e-5, atol=1e-7,
    )


def test_bfloat16_stays_within_its_rounding():
    direction, scale, _ = _inputs((3, 3, 16, 8), seed=7)
    kernel = weight_normalized_kernel(ops.cast(direction, "bfloat16"), ops.cast(scale, "bfloat16"))
    assert keras.backend.standardize_dtype(kernel.dtype) == "bfloat16"
    # The inputs rounded to bfloat16 (2^-8 relative each), then the kernel's own rounding.
    rounded = [to_numpy(ops.cast(ops.cast(a, "bfloat16"), "float32")) for a in (direction, scale)]
    expected, _, _ = _numpy_kernel_and_gradients(*rounded, np.zeros_like(direction))
    got = to_numpy(ops.cast(kernel, "float32"))
    np.testing.assert_allclose(got, expected, rtol=2 * 2.0**-8, atol=1e-6)


def test_the_layer_computes_its_kernel_through_it():
    conv = WeightNormConv2D(4, 3)
    conv.build((None, 6, 6, 5))
    rng = np.random.default_rng(3)
    conv.direction.assign(rng.normal(size=(3, 3, 5, 4)).astype("float32"))
    conv.scale.assign(rng.uniform(0.5, 2.0, size=4).astype("float32"))
    expected, _, _ = _numpy_kernel_and_gradients(
        to_numpy(conv.direction), to_numpy(conv.scale), np.zeros((3, 3, 5, 4))
    )
    np.testing.assert_allclose(to_numpy(conv.effective_kernel()), expected, rtol=1e-5, atol=1e-6)
    if keras.backend.backend() == "torch":
        assert type(conv.effective_kernel().grad_fn).__name__.startswith("WeightNormInterface")
