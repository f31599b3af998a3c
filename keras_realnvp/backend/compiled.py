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

Inference stays differentiable for a caller who differentiates (scores `d log p(x) / dx`,
Langevin sampling, attacks), and keeps nothing for one who does not; each backend's own
mechanism decides, see `compile_inference` and `run_inference`. Input checks that read
values ask `concrete_value` whether a caller's trace has computed them yet.

The other choices made here are the memory layout convolutions run in
(`conv_data_format`) and which operations XLA's CPU compiler gives to the YNNPACK library
(`configure_xla_cpu`); see their docstrings.
"""

import contextlib
import os

import keras


def compile_inference(model, fn):
    """`fn(*args)` compiled for the model's backend; `fn` must not update variables.

    `args` may be tensors, nested lists of tensors, or `None`; a new input shape
    compiles anew (like `predict`), the same shape reuses the compiled function. The
    model's variables are read at every call, so training between calls is seen.

    Gradients flow through the result exactly when the caller differentiates, by each
    backend's own rule (a plain call keeps no graph on any backend):

    - JAX: the jitted function is an ordinary JAX function, so a caller's `jax.grad`,
      `jax.jit` or `jax.vmap` traces through it (tracers as arguments, also as the
      variables' values inside a caller's `keras.StatelessScope`); outside a trace JAX
      records nothing.
    - TensorFlow: a `tf.function` is differentiable: a `tf.GradientTape` that watches an
      argument (or reads the model's variables) records the call, and inside a caller's
      `tf.function` the call is traced into that graph. With no tape recording, nothing is
      kept. (TensorFlow has no public "is a tape recording" query; none is needed.)
    - PyTorch: `run_inference`'s rule, autograd only for arguments that require grad.

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


def run_inference(fn, *args):
    """`fn(*args)` run eagerly, recording gradients only when the caller differentiates.

    On PyTorch the caller differentiates when autograd is enabled (`torch.is_grad_enabled()`)
    and a tensor among `args` (nested lists and tuples included) has `requires_grad`: then
    `fn` runs with autograd, and `backward()` reaches those tensors. Otherwise it runs under
    `torch.no_grad()`, so the result has no graph keeping every activation alive (the
    model's own parameters always require grad, so they cannot be the signal: to train,
    call the model, as `fit` does). On JAX and TensorFlow `fn` just runs: their autodiff
    records only inside a caller's transformation (`jax.grad`, ...) or `tf.GradientTape`.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> y = run_inference(lambda x: 2.0 * x, ops.convert_to_tensor(np.ones(3, "float32")))
    >>> ops.convert_to_numpy(y).tolist()
    [2.0, 2.0, 2.0]
    """
    if keras.backend.backend() != "torch":
        return fn(*args)
    import torch

    if torch.is_grad_enabled() and any(getattr(t, "requires_grad", False) for t in keras.tree.flatten(args)):
        return fn(*args)
    with torch.no_grad():
        return fn(*args)


def concrete_value(x):
    """`x` if its values can be read now, else `None` (a caller's trace has not computed them yet).

    `None` for a JAX tracer without a concrete value (inside a caller's `jax.jit` or
    `jax.vmap`) and for a symbolic TensorFlow tensor (inside a `tf.function`). Under
    `jax.grad` alone the values exist: the tracer's concrete value is returned. NumPy
    arrays, eager tensors and PyTorch tensors (autograd or not) are returned as they are.
    Read the result inside `evaluating_now()`, which runs operations on it at once even
    while a caller is tracing.

    Example:

    >>> import numpy as np
    >>> x = np.ones(3)
    >>> concrete_value(x) is x
    True
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        if isinstance(x, jax.core.Tracer):
            # Tracer.to_concrete_value (jax >= 0.4.36) gives the values under jax.grad; an
            # older jax has no such method: treated as unknown, the values are not checked.
            to_concrete = getattr(x, "to_concrete_value", None)
            return to_concrete() if to_concrete is not None else None
        return x
    if backend == "tensorflow":
        import tensorflow as tf

        return None if tf.is_tensor(x) and tf.is_symbolic_tensor(x) else x
    return x


@contextlib.contextmanager
def evaluating_now():
    """Operations inside run at once on concrete values, and record no gradient.

    Inside a caller's `jax.jit` JAX would stage even operations on concrete arrays into the
    traced program (`jax.ensure_compile_time_eval` runs them instead), and inside a
    `tf.function` TensorFlow would add them to the graph (`tf.init_scope` lifts them out);
    on PyTorch `torch.no_grad()` keeps them off the autograd graph. For checks of input
    values, on what `concrete_value` returns.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> with evaluating_now():
    ...     bool(ops.convert_to_numpy(ops.all(ops.isfinite(np.ones(3)))))
    True
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        context = jax.ensure_compile_time_eval()
    elif backend == "tensorflow":
        import tensorflow as tf

        context = tf.init_scope()
    elif backend == "torch":
        import torch

        context = torch.no_grad()
    else:
        context = contextlib.nullcontext()
    with context:
        yield


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
    YNNPACK's convolutions are slower than XLA's own on CPU, its reductions far faster
    (docs/performance.md has the measurements). The flag concerns only XLA's CPU backend
    (a GPU is unaffected).

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

    def __call__(self, *args):  # a backend with nothing to compile with
        return run_inference(self.fn, *args)

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
    """Eager in both modes (Keras' torch trainer does not call torch.compile either), with
    autograd only when the caller differentiates: `_Eager.__call__`, i.e. `run_inference`."""
