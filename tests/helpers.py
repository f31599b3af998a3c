"""Reusable checks: invertibility, brute-force log-determinants, gradients, weights."""

import shutil

import keras
import numpy as np
from keras import ops

# The tiny training run that the training, resume, crash and determinism tests share (the
# `tiny_run` fixture of conftest.py): two epochs of three steps on the embedded patches, with
# one scale of 4 couplings (the multi-scale flow has tests of its own): on TensorFlow, whose
# tracing cost grows with the graph, one run took 21 s instead of 54 s with the preset's 2
# scales (2 cores, another test run beside it).
TINY = {"num_scales": 1, "filters": 4, "num_blocks": 1}
TINY_RUN = dict(preset="embedded_16", epochs=2, steps_per_epoch=3, batch_size=8, eval_examples=16, seed=1)


def run_tiny(output, **kwargs):
    """`TrainingRun(**TINY_RUN, output=output, **kwargs).run()`, quiet, with the tiny network."""
    from keras_realnvp.training import TrainingRun

    return TrainingRun(**{**TINY_RUN, "output": output, "overrides": TINY, "verbose": 0, **kwargs}).run()


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def jacobian(fn, x):
    """The full Jacobian of `fn` at one example `x` (any shape), by the backend's autodiff.

    `fn` maps a batch `(1, ...)` to a list of arrays; their flattened concatenation is
    the output vector. Autodiff linearizes the actual computation, so the check does
    not depend on finite-difference steps (which ReLU kinks and the float32 arithmetic
    inside Keras' BatchNormalization would spoil).
    """
    x = np.asarray(x, dtype="float64")
    shape = x.shape

    def flat_fn(v):
        outputs = fn(ops.reshape(v, (1, *shape)))
        return ops.concatenate([ops.reshape(o, (-1,)) for o in outputs], axis=0)

    backend = keras.backend.backend()
    flat = x.reshape(-1)
    if backend == "jax":
        import jax

        return np.asarray(jax.jacfwd(flat_fn)(flat))
    if backend == "torch":
        import torch

        return torch.autograd.functional.jacobian(flat_fn, torch.tensor(flat)).detach().cpu().numpy()
    import tensorflow as tf

    v = tf.convert_to_tensor(flat)
    with tf.GradientTape() as tape:
        tape.watch(v)
        out = flat_fn(v)
    return tape.jacobian(out, v).numpy()


def brute_force_log_det(fn, x):
    """log|det J| of `fn` at each example of `x`, from its full Jacobian (see `jacobian`)."""
    results = []
    for example in np.asarray(x, dtype="float64"):
        matrix = jacobian(fn, example)
        assert matrix.shape[0] == matrix.shape[1], f"fn must preserve the dimension: {matrix.shape}"
        sign, log_abs_det = np.linalg.slogdet(matrix)
        assert sign != 0
        results.append(log_abs_det)
    return np.array(results)


def randomize_weights(model_or_layer, seed=0, noise=0.1):
    """Move every float weight away from its initial value (statistics stay valid).

    Running variances become uniform in [0.5, 2], running means N(0, 0.3); other
    float weights get Gaussian noise of std `noise` added.
    """
    rng = np.random.default_rng(seed)
    for v in model_or_layer.weights:
        dtype = keras.backend.standardize_dtype(v.dtype)
        if not dtype.startswith("float"):
            continue
        shape = tuple(v.shape)
        if "variance" in v.path:
            v.assign(rng.uniform(0.5, 2.0, shape).astype(dtype))
        elif "mean" in v.path:
            v.assign(rng.normal(0.0, 0.3, shape).astype(dtype))
        else:
            v.assign((to_numpy(v) + rng.normal(0.0, noise, shape)).astype(dtype))


def gradient(fn, x):
    """d sum(fn(x)) / dx on the current backend; `fn` may update layer state."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(fn(x))
        return to_numpy(tape.gradient(total, x))
    if backend == "torch":
        import torch

        x = torch.tensor(np.asarray(x), requires_grad=True)
        total = fn(x).sum()
        total.backward()
        return x.grad.detach().cpu().numpy()
    import jax

    def total(x):
        with keras.StatelessScope():
            return ops.sum(fn(x))

    return np.asarray(jax.grad(total)(np.asarray(x)))


def outputs_and_gradients(run, args, cotangent):
    """`run(*args)` (a tuple whose first item is `y`) and the gradients of `sum(y * cotangent)`
    with respect to each of `args`, zeros where one does not reach `y`, all as NumPy arrays, by
    the current backend's own autodiff (eagerly on PyTorch and TensorFlow, `jax.grad` on JAX)."""
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        tensors = [torch.tensor(a, requires_grad=True) for a in args]
        outputs = run(*tensors)
        (outputs[0] * torch.tensor(cotangent)).sum().backward()
        grads = [torch.zeros_like(t) if t.grad is None else t.grad for t in tensors]
    elif backend == "tensorflow":
        import tensorflow as tf

        tensors = [tf.convert_to_tensor(a) for a in args]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            outputs = run(*tensors)
            total = tf.reduce_sum(outputs[0] * cotangent)
        grads = tape.gradient(total, tensors, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    else:
        import jax

        def total(args):
            outputs = run(*args)
            return ops.sum(outputs[0] * cotangent), outputs

        grads, outputs = jax.grad(total, has_aux=True)(list(args))
    return [to_numpy(o) for o in outputs], [to_numpy(g) for g in grads]


def seeded_weights(model_or_layer, seed=0):
    """Set every float weight from `seed` alone, so the model is the same function on every backend.

    Unlike `randomize_weights`, nothing depends on the initial values (Keras draws them
    differently per backend). Running variances become uniform in [0.5, 2], batch-norm
    gammas and all scales (weight-norm magnitudes, the couplings' tanh scales) uniform in
    [0.5, 1], everything else N(0, 0.3^2): far enough from the initialization that every
    part of the flow (s and t, the batch norms) bends the density.
    """
    rng = np.random.default_rng(seed)
    for v in model_or_layer.weights:
        dtype = keras.backend.standardize_dtype(v.dtype)
        if not dtype.startswith("float"):
            continue
        shape, name = tuple(v.shape), v.path.split("/")[-1]
        if "variance" in name:
            value = rng.uniform(0.5, 2.0, shape)
        elif name in ("gamma", "scale"):
            value = rng.uniform(0.5, 1.0, shape)
        else:
            value = rng.normal(0.0, 0.3, shape)
        v.assign(value.astype(dtype))


def central_differences(fn, x, step):
    """`d fn(x)[n] / d x[n]` for each example `n`, by central differences of size `step`.

    `fn` maps a batch `(N, ...)` to one value per example, `(N,)`, each depending on its own
    example only (as a flow's density in inference mode does): then all `2 * D * N`
    perturbed inputs go through `fn` as one batch. Returns an array shaped like `x`.
    """
    x = np.asarray(x, dtype="float64")
    count, dims = x.shape[0], x[0].size
    offsets = step * np.eye(dims).reshape(dims, 1, *x.shape[1:])
    batch = np.concatenate([x[None] + offsets, x[None] - offsets]).reshape(-1, *x.shape[1:])
    values = to_numpy(fn(batch)).astype("float64").reshape(2, dims, count)
    return ((values[0] - values[1]) / (2.0 * step)).T.reshape(x.shape)


# ----------------------------------------------------------------------------- shared layer checks
# The three checks every bijective piece passes (tests/bijectors), reused by the networks
# (serialization) and the models (inverse and log-det of the whole flow), as KerasHub reuses
# its `run_layer_test`.


def _flat(outputs):
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [to_numpy(o) for o in outputs]


def check_inverse(forward, inverse, x, atol):
    """`inverse(forward(x)) == x` to `atol` (absolute), for any forward/inverse pair."""
    np.testing.assert_allclose(_flat(inverse(forward(x)))[0], np.asarray(x), atol=atol, rtol=0)


def check_log_det(forward_with_log_det, x, atol):
    """The log-det `forward_with_log_det(x)` returns against `slogdet` of the autodiff Jacobian.

    `forward_with_log_det` maps a batch to `(outputs, log_det)`: `outputs` one array or a list
    of arrays (a model's latents), `log_det` of shape `(batch,)`.
    """
    outputs, log_det = forward_with_log_det(x)
    assert tuple(log_det.shape) == (len(x),)
    expected = brute_force_log_det(
        lambda batch: list(forward_with_log_det(batch)[0]) if isinstance(outputs, (list, tuple))
        else [forward_with_log_det(batch)[0]], x
    )
    np.testing.assert_allclose(to_numpy(log_det), expected, atol=atol, rtol=0)


def check_serialization(layer, inputs, build_shape=None, **call_kwargs):
    """A layer rebuilt from `serialize_keras_object` with the same weights computes the same outputs exactly."""
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    if not clone.built:  # deserialization rebuilds from the stored build config
        clone.build(build_shape)
    clone.set_weights(layer.get_weights())
    for got, expected in zip(_flat(clone(inputs, **call_kwargs)), _flat(layer(inputs, **call_kwargs)), strict=True):
        np.testing.assert_array_equal(got, expected)


def lay_out_hub_cache(folder, cache, repo_id: str) -> None:
    """Write `folder`'s files into a Hugging Face Hub cache, as a download would have."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for path in folder.iterdir():
        shutil.copy2(path, snapshot / path.name)
