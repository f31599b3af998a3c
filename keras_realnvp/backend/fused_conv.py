"""A convolution with its bias, a residual addition and a ReLU, for inference on PyTorch.

`keras.ops` has no convolution with fused post-operations. In evaluation and sampling the s/t
networks' convolutions are followed by a bias, a batch norm folded into that bias (see
`CouplingResNet.folded_call`), a residual or skip sum, and a ReLU: composed in `keras.ops` on
PyTorch, each of those is a pass of its own over a 16x32x32x64 activation, with a fresh
allocation. Here oneDNN, which runs PyTorch's CPU convolutions, adds the bias inside the
convolution, and the sum and the ReLU run in place on its output. In-place operations have no
gradient to keep, so this runs only where none is recorded: PyTorch's CPU, float32, under
`torch.no_grad()` (as `RealNVP.log_prob`, `encode`, `decode` and `sample` run unless the caller
differentiates). Everywhere else, and on TensorFlow and JAX (whose compilers fuse these
operations themselves), `conv2d` is the `keras.ops` reference `reference_conv2d`.
`tests/backend/test_fused_conv.py` checks the two equal on every backend, and that a caller who
differentiates gets the reference and its gradients.

oneDNN's convolution with post-operations (`torch.ops.mkldnn._convolution_pointwise`, one
kernel for all of it) ran the cifar10 evaluation about 3% slower than this (AMD EPYC Zen 4,
2 cores, 2026-12-04): inside the network its convolutions were slower than `torch.conv2d`'s.

Activations are NHWC, as everywhere in the package; on PyTorch they are NHWC views of
channels_last memory (`keras_realnvp.backend.compiled.conv_data_format`), so the NCHW view the
kernel reads and the NHWC view of its channels_last output cost no copy.
"""

import keras
from keras import ops

from keras_realnvp.backend.batch_norm import _value
from keras_realnvp.backend.compiled import conv_data_format


def conv2d(x, kernel, bias=None, add=None, relu=False):
    """`act(conv(x, kernel) + bias + add)`: a stride-1, "same"-padded convolution of NHWC `x`.

    `kernel` is `(k, k, in, out)` (Keras' layout), `bias` an `(out,)` vector or `None`, `add`
    a tensor of the output's shape or `None`, `act` a ReLU when `relu` is true. On PyTorch where
    `fuses(x, ...)` (inference on a CPU in float32): oneDNN's convolution with the bias, then the
    sum and the ReLU in place; the `keras.ops` reference otherwise. Both give the same values to
    float32 rounding.

    Example:

    >>> import numpy as np
    >>> x = np.random.rand(2, 5, 5, 3).astype("float32")
    >>> kernel = np.random.rand(3, 3, 3, 4).astype("float32")
    >>> add = np.random.rand(2, 5, 5, 4).astype("float32")
    >>> y = conv2d(x, kernel, np.full(4, -3.0, "float32"), add=add, relu=True)
    >>> expected = np.maximum(ops.convert_to_numpy(ops.conv(x, kernel, padding="same")) - 3.0 + add, 0)
    >>> bool(np.allclose(ops.convert_to_numpy(y), expected, atol=1e-5))
    True
    """
    if fuses(x, kernel, bias, add):
        return _torch_conv2d(x, kernel, bias, add, relu)
    return reference_conv2d(x, kernel, bias, add, relu)


def reference_conv2d(x, kernel, bias=None, add=None, relu=False):
    """`conv2d` in `keras.ops` (any backend, differentiable); a 1x1 kernel as a matrix product.

    Example:

    >>> import numpy as np
    >>> x = np.ones((1, 3, 3, 1), "float32")
    >>> y = reference_conv2d(x, np.ones((3, 3, 1, 1), "float32"), bias=np.array([-5.0], "float32"), relu=True)
    >>> ops.convert_to_numpy(y)[0, :, :, 0].tolist()
    [[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]]
    """
    k = tuple(kernel.shape)
    if k[:2] == (1, 1):
        # A 1x1 convolution is a matrix product over the channels, and computed as one: XLA then
        # takes the weight gradient straight from x's memory, where for a convolution it keeps a
        # transposed copy of x (batch innermost) from the forward pass to the backward pass, a
        # second copy of every residual-stream activation that a skip convolution reads
        # (cifar10 at batch 16: 928 MB of temporary buffers for a JAX training step against
        # 1,134 MB). `einsum`, not `matmul`: Keras 3.15's PyTorch `matmul` computes float64 in
        # float32. On PyTorch the NHWC view of channels_last memory needs no copy.
        y = ops.einsum("nhwc,co->nhwo", x, ops.reshape(kernel, (k[2], k[3])))
    elif conv_data_format() == "channels_first":  # PyTorch: views of the NHWC memory, no copies
        y = ops.conv(ops.transpose(x, (0, 3, 1, 2)), kernel, padding="same", data_format="channels_first")
        y = ops.transpose(y, (0, 2, 3, 1))
    else:
        y = ops.conv(x, kernel, strides=1, padding="same")
    if bias is not None:
        y = y + ops.cast(bias, y.dtype)
    if add is not None:
        y = y + add
    return ops.relu(y) if relu else y


def fuses(x, kernel, bias=None, add=None):
    """Whether `conv2d` runs PyTorch's convolution with in-place post-operations for these arguments.

    On PyTorch, with oneDNN available, when no gradient is being recorded (`torch.no_grad()`,
    or `torch.is_grad_enabled()` false), on a CPU, for a 4-D float32 `x`, an odd square
    `kernel` and float32 `bias` and `add`. A caller can skip preparing work that only the
    in-place path pays off (`CouplingResNet` folds its batch norms into the convolutions then).

    Example:

    >>> import numpy as np
    >>> x, kernel = np.zeros((1, 4, 4, 2), "float32"), np.zeros((3, 3, 2, 2), "float32")
    >>> fuses(x, kernel)  # NumPy arrays are no PyTorch tensors: conv2d runs the reference
    False
    >>> x, kernel = ops.convert_to_tensor(x), ops.convert_to_tensor(kernel)
    >>> fuses(x, kernel)  # on PyTorch a gradient is being recorded here (no torch.no_grad())
    False
    """
    if keras.backend.backend() != "torch":
        return False
    import torch

    if torch.is_grad_enabled() or not torch.backends.mkldnn.is_available():
        return False
    tensors = [_value(t) for t in (x, kernel, bias, add) if t is not None]
    if not all(isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.device.type == "cpu" for t in tensors):
        return False
    k = tuple(_value(kernel).shape)
    return _value(x).ndim == 4 and len(k) == 4 and k[0] == k[1] and k[0] % 2 == 1


def _torch_conv2d(x, kernel, bias, add, relu):
    import torch

    x, kernel, bias, add = map(_value, (x, kernel, bias, add))
    # (k, k, in, out) -> (out, in, k, k) in channels_last memory, the layout oneDNN reads directly.
    weight = kernel.permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
    # NHWC view -> NCHW view of the same channels_last memory; oneDNN adds the bias itself.
    y = torch.conv2d(x.permute(0, 3, 1, 2), weight, bias, padding=kernel.shape[0] // 2)
    if add is not None:
        y.add_(add.permute(0, 3, 1, 2))  # in place: nothing records a gradient here
    if relu:
        y.relu_()
    return y.permute(0, 2, 3, 1)
