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
(`conv_data_format`) and which operations XLA's CPU compiler gives to the YNNPACK library
(`configure_xla_cpu`); see their docstrings.
"""

import os

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


# XLA's CPU compiler hands some operations to the YNNPACK library. In jaxlib 0.10.2 its default
# includes convolutions, which then run at about half the speed of XLA's own (Eigen) convolutions,
# their weight gradients at a quarter; YNNPACK's reductions, on the other hand, are about 20x
# faster than XLA's. Reductions only: see `configure_xla_cpu`.
XLA_CPU_FLAG = "--xla_cpu_experimental_ynn_fusion_type=reduce"
_XLA_CPU_FLAG_NAME = "xla_cpu_experimental_ynn_fusion_type"
_XLA_CPU_FLAG_SINCE = (0, 8, 2)  # the first jaxlib that knows the flag (an unknown flag aborts)


def configure_xla_cpu(environ=None) -> bool:
    """Add `XLA_CPU_FLAG` to `XLA_FLAGS` for JAX: YNNPACK for reductions, not for convolutions.

    `import keras_realnvp` calls this once. XLA reads `XLA_FLAGS` when JAX first computes
    something, so it takes effect unless JAX has already run a computation in the process.
    Measured on 2 cores of an Intel Xeon (jaxlib 0.10.2), a 16 x 32 x 32 x 64 3x3 convolution:
    forward 120 -> 214 GFLOP/s, weight gradient 37 -> 138; the cifar10 architecture at batch 16
    trains about 1.2x and evaluates about 1.3x faster, and its training step compiles in about
    40 s instead of 63. Without YNNPACK at all (an empty list), the batch norms' reductions would
    run about 20x slower. The flag concerns only XLA's CPU backend (a GPU is unaffected).

    Nothing changes if the backend is not JAX, if `XLA_FLAGS` already sets the flag (to any value:
    that is how to opt out; `--xla_cpu_experimental_ynn_fusion_type=+reduce` keeps XLA's default
    list), or if the installed jaxlib is older than 0.8.2 (which lacks the flag). Returns whether
    the flag was added.

    Example:

    >>> env = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}
    >>> added = configure_xla_cpu(env)
    >>> added == (keras.backend.backend() == "jax" and XLA_CPU_FLAG in env["XLA_FLAGS"])
    True
    >>> configure_xla_cpu(env)  # once only; a flag already there is left alone
    False
    """
    environ = os.environ if environ is None else environ
    if keras.backend.backend() != "jax":
        return False
    flags = environ.get("XLA_FLAGS", "")
    if _XLA_CPU_FLAG_NAME in flags or _jaxlib_version() < _XLA_CPU_FLAG_SINCE:
        return False
    environ["XLA_FLAGS"] = f"{flags} {XLA_CPU_FLAG}".strip()
    return True


def _jaxlib_version():
    from importlib import metadata

    try:
        version = metadata.version("jaxlib")
    except metadata.PackageNotFoundError:
        return (0,)
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


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
