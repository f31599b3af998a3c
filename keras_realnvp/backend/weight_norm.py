"""The weight norm's kernel `g * v / ||v||`: PyTorch's fused kernel on PyTorch, `keras.ops` elsewhere.

Every convolution of the s/t networks is weight-normalized (`WeightNormConv2D`), and a
training step of the cifar10 architecture computes 270 such kernels and their gradients.
Composed from `keras.ops` (square, sum, add, sqrt, divide, multiply, and autodiff's backward
pass of each) a kernel costs a dozen eager operations on PyTorch, each with its dispatch
through Keras; `torch._weight_norm` computes it in one fused kernel forward and one backward.
In one process, the cifar10 model taking turns between the two (6 rounds of 2 training steps at
batch 16; Intel Xeon with AMX, 2026-12-05) a `mixed_bfloat16` step took 1.114 s against 1.174 s
with the reference (5.4% faster), a float32 step 2.803 s against 2.812 s (level). On TensorFlow
and JAX the reference runs: it is a few element-wise operations inside the compiled step.
`tests/backend/test_weight_norm.py` checks the two equal in values and gradients on every
backend.
"""

import keras
from keras import ops

# Added to the squared norm in the reference, so that an all-zero direction gives a zero
# kernel rather than NaN (see `weight_normalized_kernel`).
EPSILON = 1e-12


def weight_normalized_kernel(direction, scale):
    """`scale * direction / ||direction||`, the norm per output channel (the last axis).

    `direction`: a kernel `(..., out)`, the norm taken over every axis but the last;
    `scale`: `(out,)`, the norm each output filter gets. The result has `direction`'s
    dtype. On PyTorch, `torch._weight_norm` (fused, forward and backward) without the
    reference's `EPSILON`: the two differ by less than float32's rounding for any direction
    whose filters' squared norms exceed 1e-5, and an all-zero filter gives NaN there instead
    of zero (the direction's initializer and Adam's updates leave no such filter).

    Example:

    >>> import numpy as np
    >>> direction = np.random.randn(3, 3, 4, 2).astype("float32")
    >>> kernel = weight_normalized_kernel(direction, np.array([1.0, 2.0], "float32"))
    >>> np.linalg.norm(ops.convert_to_numpy(kernel).reshape(-1, 2), axis=0).round(5).tolist()
    [1.0, 2.0]
    """
    if keras.backend.backend() == "torch":
        return _torch_weight_normalized_kernel(direction, scale)
    return reference_weight_normalized_kernel(direction, scale)


def reference_weight_normalized_kernel(direction, scale):
    """`weight_normalized_kernel` in `keras.ops`: `direction * (scale / sqrt(sum(direction²) + EPSILON))`.

    Example:

    >>> import numpy as np
    >>> kernel = reference_weight_normalized_kernel(np.ones((1, 1, 4, 1), "float32"), np.ones(1, "float32"))
    >>> ops.convert_to_numpy(kernel).ravel().tolist()
    [0.5, 0.5, 0.5, 0.5]
    """
    direction = ops.convert_to_tensor(direction)
    scale = ops.convert_to_tensor(scale, dtype=direction.dtype)
    axes = tuple(range(len(direction.shape) - 1))
    norm = ops.sqrt(ops.sum(ops.square(direction), axis=axes) + EPSILON)
    return direction * (scale / norm)


def _torch_weight_normalized_kernel(direction, scale):
    import torch

    direction = ops.convert_to_tensor(direction)
    scale = ops.convert_to_tensor(scale, dtype=direction.dtype)
    last = direction.dim() - 1
    return torch._weight_norm(direction, scale.reshape([1] * last + [-1]), last)
