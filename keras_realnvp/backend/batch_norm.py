"""Per-channel batch normalization through PyTorch's fused kernel, a `keras.ops` reference elsewhere.

`keras.ops` has no fused batch normalization: composed from its element-wise operations,
a batch norm of a 16x32x32x64 activation takes about twice the time of PyTorch's own
kernel on a 2-core CPU (forward and backward), and the cifar10 architecture runs about 170
of them per training step. `batch_norm` is the one function the library calls; on PyTorch it
runs `torch.native_batch_norm` (batch statistics) or one `addcmul` (given statistics), on
TensorFlow and JAX the `keras.ops` reference `reference_batch_norm`: XLA (JAX, and
TensorFlow's default `jit_compile`) fuses those operations itself, and TensorFlow's fused
kernel computes the statistics of each replica's own slice of the batch, not of the global
batch that a `tf.distribute` step needs (`keras_realnvp.backend.replicas.moments`).
`tests/backend/test_fused_batch_norm.py` checks the two equal in values and gradients on every
backend, in training and evaluation, under `tf.distribute` and `DataParallel` too.

Activations are NHWC. On PyTorch they are NHWC views of channels_last memory (see
`keras_realnvp.backend.compiled.conv_data_format`), so the permutation to the NCHW that
`torch.native_batch_norm` wants is a view of the same memory and its channels_last kernel
runs without a copy.
"""

import keras
from keras import ops

from keras_realnvp.backend import replicas


def batch_norm(x, gamma, beta, epsilon, mean=None, variance=None, bias=None, relu=False):
    """`(y, mean, variance)`: `x + bias` normalized per channel (the last axis), scaled and shifted.

    `y = act((x + bias - mean) * gamma / sqrt(variance + epsilon) + beta)`, `act` a ReLU
    when `relu` is true, else the identity; `bias` (a vector, default zero) is folded into
    the statistics, never added to `x` in a pass of its own.

    - `mean` and `variance` `None` (training): the batch statistics of `x + bias` over
      every axis but the last, those of the global batch under a `tf.distribute` strategy.
      Gradients flow through them into `x`, as in any batch norm (and to `bias` as exact
      zeros: it cancels). They are returned, without gradient, for the caller's moving
      averages.
    - Given `mean` and `variance` (evaluation, or a caller's own statistics): `y` is
      differentiable with respect to them as well, and they are returned as given.

    The statistics and `gamma`, `beta` are in float32 at least (the variables' dtype under
    mixed precision); `y` has `x`'s dtype. `gamma` or `beta` may be `None` (1 and 0).

    Example:

    >>> import numpy as np
    >>> x = np.random.rand(4, 3, 3, 2).astype("float32")
    >>> y, mean, variance = batch_norm(x, np.ones(2, "float32"), np.zeros(2, "float32"), 1e-4)
    >>> bool(np.allclose(ops.convert_to_numpy(mean), x.mean(axis=(0, 1, 2)), atol=1e-6))
    True
    >>> bool(np.allclose(ops.convert_to_numpy(y).mean(axis=(0, 1, 2)), 0.0, atol=1e-5))
    True
    """
    if keras.backend.backend() == "torch" and _torch_fits(x, gamma, beta, mean, variance, bias):
        return _torch_batch_norm(x, gamma, beta, epsilon, mean, variance, bias, relu)
    return reference_batch_norm(x, gamma, beta, epsilon, mean, variance, bias, relu)


def reference_batch_norm(x, gamma, beta, epsilon, mean=None, variance=None, bias=None, relu=False):
    """`batch_norm` in `keras.ops` (any backend): one per-channel scale and shift of `x`.

    Example:

    >>> import numpy as np
    >>> x = np.array([[[[1.0], [3.0]]]], "float32")  # (1, 1, 2, 1)
    >>> y, mean, variance = reference_batch_norm(x, None, None, 0.0, relu=True)
    >>> ops.convert_to_numpy(y).ravel().tolist(), ops.convert_to_numpy(variance).tolist()
    ([0.0, 1.0], [1.0])
    """
    scale, shift, mean, variance = normalization_affine(x, gamma, beta, epsilon, mean, variance, bias)
    y = ops.add(ops.multiply(x, ops.cast(scale, x.dtype)), ops.cast(shift, x.dtype))
    return (ops.relu(y) if relu else y), mean, variance


def normalization_affine(x, gamma, beta, epsilon, mean=None, variance=None, bias=None):
    """`(scale, shift, mean, variance)`: `reference_batch_norm` is `x * scale + shift` per channel.

    `scale` and `shift` are differentiable vectors in float32 at least; `mean` and `variance`
    are returned as `batch_norm` returns them (the batch statistics of `x + bias` without
    gradient, or the given ones).

    Example:

    >>> import numpy as np
    >>> x = np.array([[[[1.0], [3.0]]]], "float32")  # (1, 1, 2, 1)
    >>> scale, shift, mean, variance = normalization_affine(x, None, None, 0.0)
    >>> ops.convert_to_numpy(scale).tolist(), ops.convert_to_numpy(shift).tolist()
    ([1.0], [-2.0])
    """
    dtype = keras.backend.result_type(x.dtype, "float32")
    gamma = None if gamma is None else ops.cast(gamma, dtype)
    beta = None if beta is None else ops.cast(beta, dtype)
    bias = None if bias is None else ops.cast(bias, dtype)
    if mean is None:
        axes = tuple(range(len(x.shape) - 1))
        mean, variance = replicas.moments(ops.cast(x, dtype), axes=axes)
        mean = mean if bias is None else mean + bias  # the statistics of x + bias
        returned = ops.stop_gradient(mean), ops.stop_gradient(variance)
    else:
        mean, variance = ops.cast(mean, dtype), ops.cast(variance, dtype)
        returned = mean, variance
    scale = ops.rsqrt(variance + epsilon)
    scale = scale if gamma is None else gamma * scale
    # (bias - mean) rather than a cancelled form: the bias keeps a (zero) gradient in training.
    shift = (-mean if bias is None else bias - mean) * scale
    shift = shift if beta is None else beta + shift
    return scale, shift, *returned


def _torch_fits(x, *vectors):
    """Whether PyTorch's kernel computes what the reference does: a 4-D (N, H, W, C) `x` in
    float32 or float64 with every given vector in `x`'s dtype, or (mixed precision) `x` in
    bfloat16 or float16 with every given vector in float32; else the reference.

    In mixed precision both compute the statistics in float32 and return `y` in `x`'s dtype;
    PyTorch rounds `y` once where the reference rounds the scale, the product and the sum,
    so they agree to bfloat16's rounding, not bit for bit."""
    import torch

    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        return False
    if x.dtype in (torch.float32, torch.float64):
        vector_dtype = x.dtype
    elif x.dtype in (torch.bfloat16, torch.float16):
        vector_dtype = torch.float32
    else:
        return False
    return all(v is None or getattr(v, "dtype", None) == vector_dtype for v in map(_value, vectors))


def _value(v):
    """A Keras variable's tensor; anything else as it is."""
    return v.value if isinstance(v, keras.Variable) else v


def _torch_batch_norm(x, gamma, beta, epsilon, mean, variance, bias, relu):
    import torch

    gamma, beta, mean, variance, bias = map(_value, (gamma, beta, mean, variance, bias))
    if mean is None:
        # One kernel for the statistics and the normalization, forward and backward. In NCHW
        # (a view of the channels_last memory) it normalizes x; bias cancels, and enters
        # beta times zero so that it keeps its (zero) gradient, as in the reference.
        if bias is not None:
            beta = bias * 0.0 if beta is None else beta + bias * 0.0
        y, batch_mean, inverse_std = torch.native_batch_norm(
            x.permute(0, 3, 1, 2), gamma, beta, None, None, True, 0.0, epsilon
        )
        with torch.no_grad():
            returned_mean = batch_mean if bias is None else batch_mean + bias
            returned_variance = torch.reciprocal(torch.square(inverse_std)) - epsilon
        if relu:
            # In place, before the permutation: the kernel's backward does not read its output,
            # and an in-place operation on a view would make autograd copy the whole tensor.
            y = torch.relu_(y)
        return y.permute(0, 2, 3, 1), returned_mean, returned_variance
    # Given statistics: one fused multiply-add with a per-channel scale and shift, which
    # keeps the gradients with respect to mean and variance (PyTorch's kernel has none).
    returned_mean, returned_variance = mean, variance
    scale = torch.rsqrt(variance + epsilon)
    scale = scale if gamma is None else gamma * scale
    shift = (-mean if bias is None else bias - mean) * scale
    shift = shift if beta is None else beta + shift
    y = torch.addcmul(shift.to(x.dtype), x, scale.to(x.dtype))  # x's dtype, as the reference
    if relu:
        y = torch.relu_(y)  # in place: addcmul's backward does not read its output
    return y, returned_mean, returned_variance
