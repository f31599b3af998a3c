"""Reverse-mode derivatives through the backend in use: the brute-force Jacobian and float64.

`keras.ops` has no Jacobian, so `jacobian` pulls cotangents back with the backend's own
autodiff (`jax.vjp`, `torch.autograd.grad`, `tf.GradientTape`). The diagnostics use it to
check a model's log-determinant against `slogdet` of the full Jacobian.
"""

import keras
import numpy as np


def float64_available() -> bool:
    """Whether this backend computes in float64 (JAX only with `jax_enable_x64`).

    Example:

    >>> isinstance(float64_available(), bool)
    True
    """
    if keras.backend.backend() != "jax":
        return True
    import jax

    return bool(jax.config.jax_enable_x64)


def enable_float64() -> bool:
    """Let this backend compute in float64 (JAX: turn on `jax_enable_x64`); returns `float64_available()`.

    Call it before building the model that needs float64 (the brute-force Jacobian of the
    diagnostics): JAX's setting applies to arrays created afterwards.

    Example (skipped here: on JAX it changes the setting for the whole process):

    >>> enable_float64()  # doctest: +SKIP
    True
    """
    if keras.backend.backend() == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
    return float64_available()


def jacobian(batch_fn, x, chunk=64):
    """The full Jacobian of `batch_fn` at one example `x`, `chunk` rows per reverse pass.

    Returns an `(n, n)` NumPy array, `n = x.size`: row `i` is the gradient of output `i`.

    `batch_fn` maps a batch `(B, *x.shape)` to `(B, n)` and treats examples independently
    (the flow in inference mode does). Stacking `chunk` copies of `x` and pulling back
    the cotangents `e_i, ..., e_{i+chunk-1}`, one per copy, yields rows `i..i+chunk-1`
    of the Jacobian from one backward pass of batch `chunk`: `n / chunk` passes in all,
    each as fast as a training step's backward pass (the last chunk is zero-padded so
    every pass has the same shape and compiles once).

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> x = np.array([1.0, 2.0, 3.0], dtype="float32")
    >>> jacobian(lambda xs: ops.square(xs), x, chunk=2)        # diag(2x)
    array([[2., 0., 0.],
           [0., 4., 0.],
           [0., 0., 6.]], dtype=float32)
    """
    shape = x.shape
    n = x.size
    chunk = max(1, min(int(chunk), n))
    stacked = np.broadcast_to(x, (chunk, *shape)).copy()
    eye = np.eye(n, dtype=x.dtype)
    padded = np.concatenate([eye, np.zeros((-n % chunk, n), x.dtype)], axis=0)
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        pull = jax.jit(lambda xs, cotangents: jax.vjp(batch_fn, xs)[1](cotangents)[0])
        rows = [np.asarray(pull(stacked, padded[i : i + chunk])) for i in range(0, n, chunk)]
    elif backend == "torch":
        import torch

        rows = []
        for i in range(0, n, chunk):
            xs = torch.tensor(stacked, requires_grad=True)
            (grad,) = torch.autograd.grad(batch_fn(xs), xs, torch.tensor(padded[i : i + chunk]))
            rows.append(grad.detach().cpu().numpy())
    else:
        import tensorflow as tf

        # Eager: a model is rebuilt for each check and pulled back through at most a few
        # times, and tracing it into a graph costs more than those passes (the tests' tiny
        # model: 9.7 s traced against 2.3 s eager for one 48-row Jacobian).
        def pull(xs, cotangents):
            with tf.GradientTape() as tape:
                tape.watch(xs)
                out = batch_fn(xs)
            return tape.gradient(out, xs, output_gradients=cotangents)

        rows = [pull(tf.constant(stacked), tf.constant(padded[i : i + chunk])).numpy() for i in range(0, n, chunk)]
    return np.concatenate([r.reshape(len(r), n) for r in rows], axis=0)[:n]


def release_gradients(variables):
    """PyTorch: drop the gradients that autograd left on `variables`; other backends: nothing.

    Keras' PyTorch trainer leaves each step's gradients on the weights (`.grad`) and clears
    them only after the next step's forward pass, so that forward pass, where a training
    step's memory peaks, holds a second copy of the weights' size (plain PyTorch clears
    them before it: `optimizer.zero_grad(set_to_none=True)`). Called after the optimizer
    has applied them, this frees them a forward pass earlier. TensorFlow and JAX keep no
    gradients between steps.

    Example:

    >>> import keras
    >>> layer = keras.layers.Dense(2)
    >>> y = layer(keras.ops.ones((1, 3)))
    >>> if keras.backend.backend() == "torch":
    ...     keras.ops.sum(y).backward()
    >>> release_gradients(layer.trainable_variables)
    >>> [getattr(v.value, "grad", None) for v in layer.trainable_variables]
    [None, None]
    """
    if keras.backend.backend() != "torch":
        return
    for v in variables:
        v.value.grad = None
