"""Backend-specific execution choices, kept in this one file: compiled inference, conv layout.

Keras 3 compiles only the trainer's own steps (`train_step`, `test_step`, `predict_step`,
reached through `fit`, `evaluate`, `predict` and `*_on_batch`), which take `(x, y, weights)`
tuples and return NumPy arrays; it has no public way to compile another method such as
`RealNVP.decode`. Run eagerly, those methods dispatch every op from Python, which on JAX is
several times slower than compiled code, and on PyTorch records an autograd graph that keeps
every activation alive until the result is dropped. This is the one file of the package
that dispatches on the backend, for that reason only; it imports the backend lazily and
mirrors what each Keras trainer does for `predict`:

- JAX: `jax.jit` of a stateless function that receives the current variable values as
  arguments (a `keras.StatelessScope` maps them onto the model's variables), so the compiled
  code never bakes in stale weights;
- TensorFlow: `tf.function` (XLA when the model's `jit_compile` is true), which reads the
  variables at run time;
- PyTorch: eager under `torch.no_grad()`, as Keras' torch `predict_step` does.

A model with `run_eagerly = True` runs the functions as plain Python, for debugging.

The other choices made here are the memory layout convolutions run in
(`conv_data_format`) and a batch split that works around slow weight gradients of XLA's CPU
convolutions (`conv_batch_chunks`); see their docstrings.
"""

import keras


def compile_inference(model, fn):
    """`fn(*args)` compiled for the model's backend; `fn` must not update variables.

    `args` may be tensors, nested lists of tensors, or `None`; a new input shape
    compiles anew (like `predict`), the same shape reuses the compiled function. The
    model's variables are read at every call, so training between calls is seen.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> layer = keras.layers.Dense(2)
    >>> layer.build((None, 3))
    >>> double = compile_inference(layer, lambda x: 2.0 * layer(x))
    >>> x = np.ones((4, 3), "float32")
    >>> bool(np.allclose(ops.convert_to_numpy(double(x)), 2.0 * ops.convert_to_numpy(layer(x))))
    True
    """
    backend = keras.backend.backend()
    if backend == "jax":
        return _JaxFunction(model, fn)
    if backend == "tensorflow":
        return _TensorFlowFunction(model, fn)
    if backend == "torch":
        return _TorchFunction(model, fn)
    return _Eager(model, fn)


def conv_data_format() -> str:
    """The `data_format` in which `ops.conv` reads NHWC activations without copying them.

    Activations are NHWC everywhere in the package. Keras' PyTorch `conv` turns a
    channels_last input into a contiguous NCHW copy and then back into channels_last memory
    (oneDNN's fast layout on x86) before calling `torch.conv2d`: two full copies of the
    input per convolution, and two more of its gradient, about a quarter of the s/t
    networks' time on a CPU. On PyTorch the convolutions therefore run as
    `transpose -> conv(channels_first) -> transpose`: there both transposes are views of
    the same NHWC memory (`torch.channels_last` format), so nothing is copied. On
    TensorFlow the transposes would be real copies, and XLA (JAX) picks the layout
    itself, so both keep channels_last.

    Example:

    >>> conv_data_format() in ("channels_last", "channels_first")
    True
    """
    return "channels_first" if keras.backend.backend() == "torch" else "channels_last"


def conv_batch_chunks(shape) -> int:
    """Into how many pieces to split a batch `(N, H, W, C)` before a trained convolution.

    XLA's CPU backend computes a convolution's weight gradient (a contraction over all
    `N * H * W` positions into a small kernel) at about a quarter of the speed of its
    forward pass once there are more than a few thousand positions: measured on 2 cores,
    37 GFLOP/s for 16 x 32 x 32 x 64 -> 64 (3x3) against 140 forward, and 23 GFLOP/s for
    the 1x1 convolutions. The weight gradient of a batch is the sum of those of its pieces,
    and pieces of about 2,048 positions run at 110-160 GFLOP/s, so on JAX on a CPU the
    convolutions of a training step run piece by piece (at most 16 pieces, dividing `N`).
    Everywhere else, and for a batch that is already small, this is 1: PyTorch and
    TensorFlow call oneDNN, whose weight gradients are as fast as the forward pass, and
    XLA's GPU backend calls cuDNN.

    Example:

    >>> conv_batch_chunks((16, 32, 32, 64)) in (1, 8)
    True
    """
    if keras.backend.backend() != "jax" or any(d is None for d in shape[:3]):
        return 1
    import jax

    if jax.default_backend() != "cpu":
        return 1
    n, h, w = (int(d) for d in shape[:3])
    target = min(16, n, max(1, n * h * w // 2048))
    return max(d for d in range(1, target + 1) if n % d == 0)


class _Eager:
    def __init__(self, model, fn):
        self.model = model
        self.fn = fn

    def _eager(self):
        return bool(getattr(self.model, "run_eagerly", False))


class _JaxFunction(_Eager):
    def __init__(self, model, fn):
        import jax

        super().__init__(model, fn)
        self._variables = None

        def stateless(values, args):
            with keras.StatelessScope(state_mapping=zip(self._variables, values)):
                return fn(*args)

        self._jitted = jax.jit(stateless)

    def __call__(self, *args):
        if self._eager() or not getattr(self.model, "jit_compile", True):
            return self.fn(*args)
        self._variables = list(self.model.variables)
        return self._jitted([v.value for v in self._variables], args)


class _TensorFlowFunction(_Eager):
    def __init__(self, model, fn):
        super().__init__(model, fn)
        self._compiled = None

    def __call__(self, *args):
        if self._eager():
            return self.fn(*args)
        if self._compiled is None:
            import tensorflow as tf

            jit = getattr(self.model, "jit_compile", False) is True
            self._compiled = tf.function(self.fn, reduce_retracing=True, jit_compile=jit)
        return self._compiled(*args)


class _TorchFunction(_Eager):
    def __call__(self, *args):
        import torch

        if self._eager():
            return self.fn(*args)
        with torch.no_grad():
            return self.fn(*args)
