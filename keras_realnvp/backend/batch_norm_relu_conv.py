"""`conv(relu(batch_norm(x)))` in training, its normalized activation recomputed for the backward pass.

Both 3x3 convolutions of every residual block of an s/t network read `relu(batch_norm(x))`
(the stem reads the coupling's input, the 1x1 skips the residual stream). Autodiff keeps
two activation-sized tensors per such convolution until the backward pass: `x`, which the
batch norm's gradient reads, and `a = relu(batch_norm(x))`, which the ReLU's gradient and the
convolution's weight gradient read. `a` is one multiply-add and a ReLU away from `x` and the
batch statistics, so `batch_norm_relu_conv` keeps only `x` and recomputes `a` in the backward
pass: a training step at batch 16 of the cifar10 architecture then needs about 40% less memory
on every backend (docs/performance.md has the figures), for one more element-wise pass per
convolution.

- **PyTorch**: a `torch.autograd.Function` around `torch.native_batch_norm` (the kernel of
  `keras_realnvp.backend.batch_norm`), `torch.conv2d`, and in its backward pass
  `aten.convolution_backward`, `aten.threshold_backward` and `aten.native_batch_norm_backward`.
- **TensorFlow**: a `tf.custom_gradient` whose gradient recomputes `a` once the incoming
  gradient exists (a control dependency, so that graph optimization cannot merge it with the
  forward pass's `a`) and runs `Conv2DBackpropInput` and `Conv2DBackpropFilter` itself. The
  batch statistics stay outside it (`keras_realnvp.backend.replicas.moments`: the global
  batch's under a `tf.distribute` strategy) and autodiff differentiates them as usual.
  `keras.remat` (`tf.recompute_grad`) saved as much memory but doubled the first step's
  compile time.
- **JAX**: a `jax.custom_vjp` with the batch norm's analytic gradient, whose residuals are `x`,
  the statistics and the parameters. Its backward pass recomputes `a` from `x` plus zero times
  one element of the incoming gradient per example: XLA's CPU compiler drops optimization
  barriers, so `jax.checkpoint` (and a recomputation without that data dependency) was merged
  with the forward pass's `a` and left the buffers as they were, or kept more.

`reference_batch_norm_relu_conv` is the same function in `keras.ops`, with every activation
kept; `tests/backend/test_batch_norm_relu_conv.py` checks the two equal in values and
gradients on every backend, under `tf.distribute` and JAX's `DataParallel` too.
"""

import functools

import keras
from keras import ops

from keras_realnvp.backend.batch_norm import _torch_fits, _value, batch_norm, normalization_affine
from keras_realnvp.backend.fused_conv import reference_conv2d


def batch_norm_relu_conv(x, gamma, beta, epsilon, kernel, bias=None):
    """`(conv(relu(batch_norm(x + bias)), kernel), mean, variance)` with the batch statistics.

    The statistics and the normalization are those of
    `keras_realnvp.backend.batch_norm.batch_norm` without given statistics (training): of
    `x + bias` over every axis but the last, `bias` folded in, returned without gradient
    for the caller's moving averages. `kernel` is `(k, k, in, out)`, `k` odd, applied with
    stride 1 and "same" padding, without bias. The backward pass recomputes the normalized
    activation from `x` instead of keeping it (see the module's docstring); the values and
    gradients are those of `reference_batch_norm_relu_conv`.

    Example:

    >>> import numpy as np
    >>> x = np.random.rand(2, 4, 4, 3).astype("float32")
    >>> gamma, beta = np.ones(3, "float32"), np.zeros(3, "float32")
    >>> kernel = np.random.rand(3, 3, 3, 5).astype("float32")
    >>> y, mean, variance = batch_norm_relu_conv(x, gamma, beta, 1e-4, kernel)
    >>> expected, _, _ = reference_batch_norm_relu_conv(x, gamma, beta, 1e-4, kernel)
    >>> tuple(y.shape), bool(np.allclose(ops.convert_to_numpy(y), ops.convert_to_numpy(expected), atol=1e-5))
    ((2, 4, 4, 5), True)
    """
    backend = keras.backend.backend()
    if backend == "torch" and _torch_fits(x, gamma, beta, bias) and _kernel_fits(x, kernel):
        return _torch_batch_norm_relu_conv(x, gamma, beta, epsilon, kernel, bias)
    if backend == "tensorflow" and _kernel_fits(x, kernel):
        return _tensorflow_batch_norm_relu_conv(x, gamma, beta, epsilon, kernel, bias)
    if backend == "jax" and _kernel_fits(x, kernel):
        return _jax_batch_norm_relu_conv(x, gamma, beta, epsilon, kernel, bias)
    return reference_batch_norm_relu_conv(x, gamma, beta, epsilon, kernel, bias)


def reference_batch_norm_relu_conv(x, gamma, beta, epsilon, kernel, bias=None):
    """`batch_norm_relu_conv` in `keras.ops` (any backend): autodiff keeps every activation.

    Example:

    >>> import numpy as np
    >>> x = np.array([[[[1.0], [3.0]]]], "float32")  # (1, 1, 2, 1): normalized to [-1, 1]
    >>> y, mean, variance = reference_batch_norm_relu_conv(x, None, None, 0.0, np.full((1, 1, 1, 1), 2.0, "float32"))
    >>> ops.convert_to_numpy(y).ravel().tolist(), ops.convert_to_numpy(mean).tolist()
    ([0.0, 2.0], [2.0])
    """
    a, mean, variance = batch_norm(x, gamma, beta, epsilon, bias=bias, relu=True)
    return reference_conv2d(a, ops.cast(kernel, a.dtype)), mean, variance


def _kernel_fits(x, kernel):
    """A 4-D `x` and an odd square `(k, k, in, out)` kernel in `x`'s dtype."""
    k = tuple(kernel.shape)
    return (
        len(x.shape) == 4
        and len(k) == 4
        and k[0] == k[1]
        and k[0] % 2 == 1
        and keras.backend.standardize_dtype(kernel.dtype) == keras.backend.standardize_dtype(x.dtype)
    )


def _torch_batch_norm_relu_conv(x, gamma, beta, epsilon, kernel, bias):
    import torch

    gamma, beta, bias, kernel = map(_value, (gamma, beta, bias, kernel))
    channels = x.shape[-1]
    if gamma is None:
        gamma = torch.ones(channels, dtype=_vector_dtype(x), device=x.device)
    if beta is None:
        beta = torch.zeros(channels, dtype=_vector_dtype(x), device=x.device)
    if bias is not None:
        beta = beta + bias * 0.0  # bias cancels in the normalization; a (zero) gradient, as the reference
    y, mean, inverse_std = _torch_function().apply(x, gamma, beta, kernel, epsilon)
    with torch.no_grad():
        mean = mean if bias is None else mean + bias
        variance = torch.reciprocal(torch.square(inverse_std)) - epsilon
    return y, mean, variance


def _vector_dtype(x):
    import torch

    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


@functools.cache
def _torch_function():
    """The `torch.autograd.Function`, defined once, on first use (importing this module imports no torch)."""
    import torch

    class BatchNormReluConv(torch.autograd.Function):
        """`(conv(relu(bn(x))), mean, 1/std)` in NHWC views of channels_last memory; keeps `x` only."""

        @staticmethod
        def forward(ctx, x, gamma, beta, kernel, epsilon):
            nchw = x.permute(0, 3, 1, 2)  # a view of the channels_last memory
            a, mean, inverse_std = torch.native_batch_norm(nchw, gamma, beta, None, None, True, 0.0, epsilon)
            torch.relu_(a)
            # (k, k, in, out) -> (out, in, k, k), copied once into the channels_last memory that
            # oneDNN reads (the convolution and its backward pass would each copy the permuted view).
            weight = kernel.permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
            y = torch.conv2d(a, weight, padding=kernel.shape[0] // 2)
            ctx.save_for_backward(x, gamma, beta, weight, mean, inverse_std)
            ctx.epsilon = epsilon
            ctx.mark_non_differentiable(mean, inverse_std)
            return y.permute(0, 2, 3, 1), mean, inverse_std

        @staticmethod
        def backward(ctx, grad_y, _grad_mean, _grad_inverse_std):
            x, gamma, beta, weight, mean, inverse_std = ctx.saved_tensors
            nchw = x.permute(0, 3, 1, 2)
            a = _recomputed_activation(nchw, gamma, beta, mean, inverse_std)
            padding = weight.shape[-1] // 2
            grad_a, grad_weight, _ = torch.ops.aten.convolution_backward(
                grad_y.permute(0, 3, 1, 2), a, weight, None, [1, 1], [padding] * 2, [1, 1], False, [0, 0], 1,
                [True, ctx.needs_input_grad[3], False],
            )
            grad_a = torch.ops.aten.threshold_backward(grad_a, a, 0)
            del a
            grad_x, grad_gamma, grad_beta = torch.ops.aten.native_batch_norm_backward(
                grad_a, nchw, gamma, None, None, mean, inverse_std, True, ctx.epsilon, [True, True, True]
            )
            # Contiguous in Keras' (k, k, in, out) layout: the weight norm's backward pass runs on it.
            grad_kernel = None if grad_weight is None else grad_weight.permute(2, 3, 1, 0).contiguous()
            return grad_x.permute(0, 2, 3, 1), grad_gamma, grad_beta, grad_kernel, None

    return BatchNormReluConv


def _recomputed_activation(nchw, gamma, beta, mean, inverse_std):
    """PyTorch: `relu(batch_norm(x))` again, from the statistics the forward kernel returned.

    `nchw` is the NCHW view of `x`; `mean` and `inverse_std` are `torch.native_batch_norm`'s
    saved statistics. `x * scale + shift` with `scale = gamma * inverse_std` and `shift = beta -
    mean * scale`, computed by `torch.native_batch_norm` itself in evaluation mode (the scale
    and shift given as its weight and bias, with zero mean and unit variance): one pass that
    writes `x`'s dtype and memory format. An `addcmul` took longer in float32 and, in bfloat16,
    wrote a float32 tensor that a second pass rounded (about 4% of a mixed-precision training
    step of the cifar10 architecture). The forward kernel orders its arithmetic differently, so
    the two agree to rounding, not bit for bit: in float32 a few ulps of `|x * scale| +
    |shift|`; in bfloat16 a few dozen elements per million one unit in the last place apart.
    """
    import torch

    scale = inverse_std * gamma
    shift = beta - mean * scale
    zeros, ones = torch.zeros_like(scale), torch.ones_like(scale)
    a, _, _ = torch.native_batch_norm(nchw, scale, shift, zeros, ones, False, 0.0, 0.0)
    return a.relu_()


def _tensorflow_batch_norm_relu_conv(x, gamma, beta, epsilon, kernel, bias):
    # The reference's scale and shift, differentiated by autodiff (the global batch's moments
    # under tf.distribute); only the affine map, the ReLU and the convolution are custom.
    scale, shift, mean, variance = normalization_affine(x, gamma, beta, epsilon, bias=bias)
    return _tensorflow_affine_relu_conv(x, scale, shift, kernel), mean, variance


def _tensorflow_affine_relu_conv(x, scale, shift, kernel):
    """`conv(relu(x * scale + shift), kernel)` whose gradient recomputes the ReLU's output."""
    import tensorflow as tf

    @tf.custom_gradient
    def affine_relu_conv(x, scale, shift, kernel):
        def activation(x):
            return tf.nn.relu(x * tf.cast(scale, x.dtype) + tf.cast(shift, x.dtype))

        y = tf.nn.conv2d(activation(x), kernel, strides=1, padding="SAME")

        def grad(grad_y):
            # Recomputed once grad_y exists: a control dependency keeps graph optimization
            # from merging it with the forward pass's activation, which would then be kept.
            with tf.control_dependencies([grad_y]):
                recomputed_x = tf.identity(x)
            a = activation(recomputed_x)
            strides = [1, 1, 1, 1]
            grad_a = tf.raw_ops.Conv2DBackpropInput(
                input_sizes=tf.shape(x), filter=kernel, out_backprop=grad_y, strides=strides, padding="SAME"
            )
            grad_kernel = tf.raw_ops.Conv2DBackpropFilter(
                input=a, filter_sizes=tf.shape(kernel), out_backprop=grad_y, strides=strides, padding="SAME"
            )
            grad_pre = tf.raw_ops.ReluGrad(gradients=grad_a, features=a)
            grad_x = grad_pre * tf.cast(scale, x.dtype)
            grad_scale = tf.reduce_sum(tf.cast(grad_pre * recomputed_x, scale.dtype), axis=(0, 1, 2))
            grad_shift = tf.reduce_sum(tf.cast(grad_pre, shift.dtype), axis=(0, 1, 2))
            return grad_x, grad_scale, grad_shift, grad_kernel

        return y, grad

    return affine_relu_conv(x, scale, shift, kernel)


def _jax_batch_norm_relu_conv(x, gamma, beta, epsilon, kernel, bias):
    import jax.numpy as jnp

    dtype = keras.backend.result_type(x.dtype, "float32")
    channels = x.shape[-1]
    gamma = jnp.ones(channels, dtype) if gamma is None else jnp.asarray(_value(gamma), dtype)
    beta = jnp.zeros(channels, dtype) if beta is None else jnp.asarray(_value(beta), dtype)
    # bias cancels in the normalization: it enters the returned mean only (a zero gradient, as in
    # the reference, where it cancels arithmetically).
    y, mean, variance = _jax_function()(x, gamma, beta, jnp.asarray(_value(kernel)), epsilon)
    if bias is not None:
        mean = ops.stop_gradient(mean + jnp.asarray(_value(bias), dtype))
    return y, mean, variance


@functools.cache
def _jax_function():
    """A `jax.custom_vjp` whose residuals are `x`, the statistics and the parameters, defined once."""
    import jax
    import jax.numpy as jnp

    def activation(x, gamma, beta, mean, inverse_std):
        scale = gamma * inverse_std
        shift = beta - mean * scale
        return jax.nn.relu(x * scale.astype(x.dtype) + shift.astype(x.dtype))

    def forward(x, gamma, beta, kernel, epsilon):
        mean, variance = ops.moments(x.astype(jnp.result_type(x.dtype, jnp.float32)), axes=(0, 1, 2))
        inverse_std = jax.lax.rsqrt(variance + epsilon)
        y = reference_conv2d(activation(x, gamma, beta, mean, inverse_std), kernel)
        return (y, mean, variance), (x, gamma, beta, kernel, mean, inverse_std)

    @functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
    def batch_norm_relu_conv(x, gamma, beta, kernel, epsilon):
        return forward(x, gamma, beta, kernel, epsilon)[0]

    def backward(epsilon, residuals, cotangents):
        x, gamma, beta, kernel, mean, inverse_std = residuals
        grad_y = cotangents[0]
        # Recomputed from x once grad_y exists: XLA's CPU compiler drops optimization barriers,
        # and would otherwise merge this with the forward pass's activation and keep that. One
        # element per example, so that a batch split over devices needs no communication for it.
        # (A non-finite grad_y makes every gradient here non-finite either way.)
        x = x + (grad_y[:, :1, :1, :1] * 0).astype(x.dtype)
        a = activation(x, gamma, beta, mean, inverse_std)
        _, convolution_vjp = jax.vjp(reference_conv2d, a, kernel)
        grad_a, grad_kernel = convolution_vjp(grad_y)
        grad_pre = jnp.where(a > 0, grad_a, jnp.zeros_like(grad_a)).astype(mean.dtype)
        normalized = (x.astype(mean.dtype) - mean) * inverse_std
        count = x.shape[0] * x.shape[1] * x.shape[2]
        grad_beta = jnp.sum(grad_pre, axis=(0, 1, 2))
        grad_gamma = jnp.sum(grad_pre * normalized, axis=(0, 1, 2))
        grad_x = (gamma * inverse_std) * (grad_pre - grad_beta / count - normalized * (grad_gamma / count))
        return grad_x.astype(x.dtype), grad_gamma, grad_beta, grad_kernel

    batch_norm_relu_conv.defvjp(forward, backward)
    return batch_norm_relu_conv
