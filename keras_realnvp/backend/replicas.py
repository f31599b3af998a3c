"""Data parallelism: the device scope of `--distribute`, and `tf.distribute` reductions, in this one file.

Under `keras.distribution.DataParallel` (JAX) a training step sees the whole global batch
as one sharded array, so batch statistics, the loss and the dequantization noise are
those of the global batch with no help from the model. Under a `tf.distribute` strategy
(`TrainingRun(distribute=True)` on TensorFlow) each replica runs the step on its own
slice of the batch, and the model must combine what the replicas computed:

- batch statistics (RunningBatchNorm, the s/t networks' batch norms) sum their
  per-replica sums with `replica_sum`, so they are those of the global batch;
- the loss is divided by `num_replicas()`: the optimizer sums the replicas' gradients;
- the dequantization noise is drawn for the global batch and sliced (`replica_index`),
  so the noise does not depend on the number of devices;
- the gradient-norm clip applies to the global batch's gradient (`clip_by_global_norm`),
  not to each replica's share, which is what Keras' optimizers clip.

Keras' own `ops.moments(..., synchronized=True)` raises on JAX and PyTorch and computes
the variance as E[x^2] - E[x]^2; the helpers here are no-ops outside a multi-replica
TensorFlow step and keep the two-pass sums of the callers. Part of `keras_realnvp.backend`,
the one package that imports a backend (the one in use).
"""

import contextlib

import keras
from keras import ops


def _replica_context():
    """The `tf.distribute` replica context of a step running on several replicas, or `None`."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return None
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def num_replicas() -> int:
    """Replicas the current training step runs on: 1 except inside a `tf.distribute` step.

    Example:

    >>> num_replicas()
    1
    """
    context = _replica_context()
    return 1 if context is None else int(context.num_replicas_in_sync)


def replica_index():
    """This replica's position (0-based) in a `tf.distribute` step; 0 elsewhere.

    Example:

    >>> int(replica_index())
    0
    """
    context = _replica_context()
    return 0 if context is None else context.replica_id_in_sync_group


def replica_sum(x):
    """`x` summed over the replicas of a `tf.distribute` step (differentiably); else `x`.

    Example:

    >>> import numpy as np
    >>> ops.convert_to_numpy(replica_sum(np.array([1.0, 2.0], "float32"))).tolist()
    [1.0, 2.0]
    """
    context = _replica_context()
    if context is None:
        return x
    import tensorflow as tf

    return context.all_reduce(tf.distribute.ReduceOp.SUM, x)


def moments(x, axes):
    """`ops.moments(x, axes)`, over the global batch inside a `tf.distribute` step.

    Outside one this is `ops.moments` itself. Inside, the mean and then the variance
    around it are two all-reduced sums (two passes, as in a single-device computation).

    Example:

    >>> import numpy as np
    >>> mean, variance = moments(np.array([[1.0], [3.0]], "float32"), axes=(0,))
    >>> ops.convert_to_numpy(mean).tolist(), ops.convert_to_numpy(variance).tolist()
    ([2.0], [1.0])
    """
    if _replica_context() is None:
        return ops.moments(x, axes=axes)
    count = replica_sum(ops.cast(ops.size(x) // ops.shape(x)[-1], x.dtype))
    mean = replica_sum(ops.sum(x, axis=axes)) / count
    variance = replica_sum(ops.sum(ops.square(x - mean), axis=axes)) / count
    return mean, variance


def clip_by_global_norm(grads, clip_norm):
    """`grads` scaled by `min(1, clip_norm / ||g||)`, `g` the gradient of the global batch.

    Outside a `tf.distribute` step this is the plain global-norm clip. Inside one, each
    replica holds its share of the gradient and the optimizer sums the shares after
    clipping; Keras clips every share by its own norm, which with an active clip (the
    authors' 100 on a nats-per-image loss engages every step) gives another update than one
    device. Here the shares are summed first (one all-reduce) to take the global norm,
    and every share is scaled by the same factor, so their sum is the single-device update.

    Example:

    >>> import numpy as np
    >>> grads = [np.array([3.0, 0.0], "float32"), np.array([4.0], "float32")]
    >>> [[round(float(v), 6) for v in ops.convert_to_numpy(g)] for g in clip_by_global_norm(grads, 1.0)]
    [[0.6, 0.0], [0.8]]
    """
    present = [g for g in grads if g is not None]
    total = [replica_sum(g) for g in present]
    norm = ops.sqrt(sum(ops.sum(ops.square(ops.cast(t, "float32"))) for t in total))
    factor = ops.minimum(1.0, clip_norm / ops.maximum(norm, 1e-30))
    return [None if g is None else ops.multiply(g, ops.cast(factor, g.dtype)) for g in grads]


def global_batch_slice(draw, shape):
    """`draw(shape)`, or this replica's slice of `draw` of the global batch in a `tf.distribute` step.

    `draw` maps a shape to a tensor whose first axis is the batch (random noise, say): the
    replicas of a step all draw for the global batch, from the same generator state, and each
    keeps its own rows, so the values do not depend on how the batch is split.

    Example:

    >>> import numpy as np
    >>> tuple(global_batch_slice(lambda s: ops.zeros(s), (3, 2)).shape)
    (3, 2)
    """
    replicas = num_replicas()
    if replicas == 1:
        return draw(shape)
    local = shape[0]
    values = draw((local * replicas, *shape[1:]))
    start = replica_index() * local
    return ops.slice(values, (start, *([0] * (len(shape) - 1))), shape)


@contextlib.contextmanager
def distribution_scope(distribute: bool):
    """Data parallelism over all local devices for the `with` block; yields the device count.

    JAX: `keras.distribution.DataParallel` (one sharded global batch). TensorFlow: a
    `tf.distribute.MirroredStrategy` over the local GPUs, else the logical CPU devices;
    the model must be built and compiled inside the block, and `RealNVP` makes each
    replica's step equal to the single-device one (see `keras_realnvp.backend.replicas`).
    PyTorch: a `ValueError` (Keras has no data parallelism for it). With
    `distribute=False` nothing changes and it yields 1.

    Example:

    >>> with distribution_scope(False) as devices:
    ...     devices
    1
    """
    if not distribute:
        yield 1
        return
    backend = keras.backend.backend()
    if backend == "jax":
        devices = keras.distribution.list_devices()
        with keras.distribution.DataParallel(devices=devices).scope():
            yield len(devices)
    elif backend == "tensorflow":
        import tensorflow as tf  # Keras' own keras.distribution runs on JAX only

        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        strategy = tf.distribute.MirroredStrategy([device.name for device in devices])
        with strategy.scope():
            yield strategy.num_replicas_in_sync
    else:
        raise ValueError(
            f"--distribute trains data-parallel with keras.distribution (JAX) or tf.distribute (TensorFlow); "
            f"the {backend} backend has no data-parallel training in Keras. Use KERAS_BACKEND=jax or tensorflow."
        )


def undo_unless_all_finite(variables, before, ok, metrics_variables):
    """A `tf.distribute` step (several replicas): undo it on all of them or on none.

    `variables` are restored to `before` on every replica unless every replica's `ok` is
    true; returns the agreed `ok`. Used by `keras_realnvp.training.finite_steps`.

    TensorFlow-specific, and isolated here because it has to be: the replicas agree on
    `ok` through an all-reduce; the metrics (per-replica, sync-on-read variables) are
    restored in the replica context, the mirrored weights and optimizer variables in the
    cross-replica context, as Keras' optimizer updates them (a `merge_call` may not sit
    inside a conditional in a replica context).
    """
    import tensorflow as tf

    ok = ops.equal(replica_sum(ops.cast(ops.logical_not(ok), "float32")), 0.0)
    metric_ids = {id(v) for v in metrics_variables}
    mirrored = []
    for v, old in zip(variables, before):
        if id(v) in metric_ids:
            v.assign(ops.where(ok, v.value, old))
        else:
            mirrored.append((v, old))

    def merge_fn(strategy, ok, olds):
        ok = strategy.experimental_local_results(ok)[0]

        def undo():
            for (v, _), old in zip(mirrored, olds):
                strategy.extended.update(v.value, lambda var, value: var.assign(value), args=(old,), group=False)

        tf.cond(ok, lambda: None, undo)

    tf.distribute.get_replica_context().merge_call(merge_fn, args=(ok, [old for _, old in mirrored]))
    return ok
