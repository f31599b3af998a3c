"""Training steps whose loss or gradients are not finite are skipped, counted and reported.

`guard_nonfinite_steps(model)` wraps the model's `train_step` (Keras' own, on every
backend) so that a step is *undone* when anything it produced is not finite: the loss,
the new weights, the optimizer's new state (a NaN or infinite gradient always reaches
Adam's moments) or the batch-norm running averages. An undone step leaves every weight
(trainable or not), every optimizer variable (moments, iteration count) and the metrics
exactly as they were; only the random generators advance, as after any step, so the
following batches and noise are those of an uninterrupted run. The step's logs gain
`SKIPPED_KEY`: 1.0 when it was undone, 0.0 otherwise.

`SkipNonFiniteSteps` is the callback that installs the guard, counts and reports the
skipped steps and stops training after `max_consecutive` of them in a row:
`callback.raise_if_stopped()` then raises `TrainingDivergedError`. Each skipped step is
reported as a `RuntimeWarning`.
"""

import threading
import warnings

import keras
from keras import ops

from keras_realnvp.backend import replicas

SKIPPED_KEY = "nonfinite_step"


class TrainingDivergedError(FloatingPointError):
    """Training stopped: too many consecutive steps had a non-finite loss or gradients.

    Example:

    >>> try:
    ...     raise TrainingDivergedError("10 consecutive steps were not finite")
    ... except FloatingPointError as error:
    ...     print(error)
    10 consecutive steps were not finite
    """


def _is_float(x):
    return keras.backend.standardize_dtype(x.dtype).startswith(("float", "bfloat"))


def _all_finite(values):
    checks = [ops.all(ops.isfinite(v)) for v in values if _is_float(v)]
    return ops.all(ops.stack(checks)) if checks else ops.convert_to_tensor(True)


def _all_finite_concatenated(values):
    """`_all_finite` as one check per dtype over the values concatenated, for XLA.

    XLA compiles a reduction per value, thousands for a step's state, each a kernel of its
    own: the JAX training step of cifar10 at batch 16 compiled in 124 s with them, 52 s with
    this (44 s unguarded); the step itself ran as fast, with the same temporary buffers.
    """
    by_dtype = {}
    for v in values:
        if _is_float(v):
            by_dtype.setdefault(keras.backend.standardize_dtype(v.dtype), []).append(ops.reshape(v, (-1,)))
    checks = [ops.all(ops.isfinite(ops.concatenate(flat))) for flat in by_dtype.values()]
    return ops.all(ops.stack(checks)) if checks else ops.convert_to_tensor(True)


def _skipped_flag(ok):
    return ops.cast(ops.logical_not(ok), "float32")


def _guarded_variables(model):
    """The state a step must not change when it is undone: weights, optimizer, metrics.

    `model.weights` excludes the random generators' states on purpose: they advance.
    """
    seen, variables = set(), []
    optimizer_variables = model.optimizer.variables if model.optimizer is not None else []
    for v in [*model.weights, *optimizer_variables, *model.metrics_variables]:
        if id(v) not in seen:
            seen.add(id(v))
            variables.append(v)
    return variables


def _stateless_step(model, train_step):
    # JAX: `train_step(state, data) -> (logs, state)` is a pure function of the state
    # tuple (trainable, non-trainable, optimizer, metrics variables), so undoing a step
    # is choosing the input state over the output one.
    def guarded_train_step(state, data):
        logs, stepped = train_step(state, data)
        weights = {id(v) for v in model.weights}
        guarded_mask = (
            [True] * len(model.trainable_variables),
            [id(v) in weights for v in model.non_trainable_variables],  # not the seed states
            [True] * len(stepped[2]),
            [True] * len(stepped[3]),
        )
        guarded = [n for news, masks in zip(stepped, guarded_mask) for n, m in zip(news, masks) if m]
        ok = _all_finite_concatenated([*guarded, *([logs["loss"]] if "loss" in logs else [])])
        undone = tuple(
            [o if m else n for n, o, m in zip(news, olds, masks)]
            for news, olds, masks in zip(stepped, state, guarded_mask)
        )
        # One conditional, not a `where` per variable: XLA compiles the latter very slowly.
        new_state = ops.cond(ok, lambda: tuple(stepped), lambda: undone)
        return {**logs, SKIPPED_KEY: _skipped_flag(ok)}, new_state

    return guarded_train_step


def _snapshot(v):
    return ops.copy(ops.stop_gradient(v.value))


def _stateful_step(model, train_step):
    # TensorFlow and PyTorch: `train_step(data) -> logs` assigns the variables in place,
    # so the guarded state is copied first and assigned back if the step is undone. The
    # weights and the optimizer's variables, which only the optimizer changes, are copied
    # when it is called, once the gradients are computed: a copy taken before the forward
    # pass would be held through it, where a step's memory peaks (on PyTorch, three copies
    # of the weights' size for Adam; TensorFlow copies a variable's buffer only when it is
    # updated while read, so there the place changes nothing). The rest (batch-norm
    # running averages, metrics, both of them small) changes during the forward pass and
    # is copied before it. Under `tf.distribute` each replica runs the step in a thread of
    # its own, hence a copy per thread.
    step = threading.local()

    def snapshot_then_apply(apply):
        def apply_after_snapshot(*args, **kwargs):
            before = getattr(step, "before", None)
            if before is not None:
                for v in _guarded_variables(model):  # the optimizer's own, if built late, too
                    if id(v) not in before:
                        before[id(v)] = _snapshot(v)
            return apply(*args, **kwargs)

        return apply_after_snapshot

    def guarded_train_step(data):
        optimizer = model.optimizer
        if getattr(optimizer, "_nonfinite_guard_step", None) is not step:  # a new optimizer
            optimizer.apply = snapshot_then_apply(type(optimizer).apply.__get__(optimizer))
            optimizer._nonfinite_guard_step = step
        optimized = {id(v) for v in [*model.trainable_variables, *optimizer.variables]}
        before = {id(v): _snapshot(v) for v in _guarded_variables(model) if id(v) not in optimized}
        step.before = before
        try:
            logs = train_step(data)
        finally:
            step.before = None
        guarded = _guarded_variables(model)
        ok = _all_finite([*[v.value for v in guarded], *([logs["loss"]] if "loss" in logs else [])])
        # A variable the step created (an optimizer built by its first `apply`) has no copy:
        # it is checked, but there is no earlier state to return it to.
        variables = [v for v in guarded if id(v) in before]
        olds = [before[id(v)] for v in variables]
        if replicas.num_replicas() > 1:
            ok = replicas.undo_unless_all_finite(variables, olds, ok, model.metrics_variables)
        elif keras.backend.backend() == "tensorflow":
            # A `where` per variable, not a conditional that assigns some 3,500 of them: the
            # graph compiles faster (cifar10 at batch 16, first step 65-68 s against 83 s; 38 s
            # unguarded) and the step runs as fast. PyTorch runs eagerly, where the conditional
            # costs nothing when the step is kept.
            for v, old in zip(variables, olds):
                v.assign(ops.where(ok, v.value, old))
        else:

            def undo():
                for v, old in zip(variables, olds):
                    v.assign(old)

            ops.cond(ok, lambda: None, undo)
        return {**logs, SKIPPED_KEY: _skipped_flag(ok)}

    return guarded_train_step


def guard_nonfinite_steps(model):
    """Make `model.fit` undo every step whose loss or new state is not finite.

    The model's `train_step` is wrapped (once; later calls do nothing) and its compiled
    train function discarded so the next `fit` compiles the guarded step. See the
    module docstring for what "undone" leaves unchanged. Costs one copy (TensorFlow,
    PyTorch) and one finiteness check of the weights and optimizer state per step; the
    copy of the weights and the optimizer's state is taken once the gradients are
    computed, so it is not held through the forward pass, where a step's memory peaks.
    On TensorFlow every guarded variable is assigned `where(ok, new, old)` each step,
    which compiles faster than a conditional restore.

    Args:
        model: a compiled `keras.Model` using Keras' default `train_step`.

    Returns:
        The model.

    Example:

    >>> import numpy as np
    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=1, filters=4, num_blocks=1)
    >>> model.compile(optimizer="adam")
    >>> _ = guard_nonfinite_steps(model)
    >>> images = np.random.uniform(0, 256, (8, 8, 8, 1)).astype("float32")
    >>> images[4:, 0, 0, 0] = np.nan                     # the second batch of 4 is not finite
    >>> history = model.fit(images, batch_size=4, shuffle=False, verbose=0)
    >>> int(model.optimizer.iterations)                  # one step applied, one skipped
    1
    """
    if getattr(model, "_nonfinite_steps_guarded", False):
        return model
    if model.optimizer is None:
        raise ValueError("guard_nonfinite_steps: compile the model first (it has no optimizer).")
    backend = keras.backend.backend()
    if backend == "jax":
        if keras.config.is_nnx_enabled():
            # With NNX, Keras' JAX trainer calls `type(model).train_step`, not the instance's.
            raise ValueError("guard_nonfinite_steps does not support Keras' JAX NNX mode.")
        model.train_step = _stateless_step(model, model.train_step)
    else:
        model.train_step = _stateful_step(model, model.train_step)
    model._nonfinite_steps_guarded = True
    model.train_function = None  # compiled before the guard: rebuilt by the next fit
    return model


class SkipNonFiniteSteps(keras.callbacks.Callback):
    """Skip, count and report non-finite training steps; stop after too many in a row.

    Installs `guard_nonfinite_steps` on the model it is given. After each batch it reads
    the step's `SKIPPED_KEY` log; a skipped step is reported (global step, count in a
    row, total) and recorded in `skipped_steps`. After `max_consecutive` skipped steps in
    a row it sets `model.stop_training` and `stopped`; `raise_if_stopped()` then raises
    `TrainingDivergedError` with `message`. The epoch logs (and so the `History`) gain
    `skipped_steps`, the number skipped that epoch, and keep the metrics of the last
    step that was not skipped (those of a skipped step are not finite).

    Args:
        max_consecutive: consecutive skipped steps that stop training (at least 1).
        first_step: global step of the first batch of the next `fit` (for reports);
            set the attribute again before each `fit` that resumes later.
        verbose: report each skipped step as a `RuntimeWarning` (through `warnings`,
            so callers can filter it or turn it into an error); 0: record it only.

    Example:

    >>> import numpy as np
    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=1, filters=4, num_blocks=1)
    >>> model.compile(optimizer="adam")
    >>> images = np.full((12, 8, 8, 1), np.nan, dtype="float32")   # nothing finite
    >>> guard = SkipNonFiniteSteps(max_consecutive=2, verbose=0)
    >>> _ = model.fit(images, batch_size=4, verbose=0, callbacks=[guard])
    >>> guard.skipped_steps, guard.stopped, int(model.optimizer.iterations)
    ([1, 2], True, 0)
    >>> try:
    ...     guard.raise_if_stopped()
    ... except TrainingDivergedError as error:
    ...     print(str(error).split(" had")[0])
    training stopped at step 2: 2 consecutive steps (1-2)
    """

    def __init__(self, max_consecutive: int = 10, first_step: int = 0, verbose: int = 1):
        super().__init__()
        if int(max_consecutive) < 1:
            raise ValueError(f"max_consecutive must be at least 1, got {max_consecutive}.")
        self.max_consecutive = int(max_consecutive)
        self.first_step = int(first_step)
        self.verbose = verbose
        self.skipped_steps = []
        self.consecutive = 0
        self.stopped = False
        self.message = None
        self._epoch_skipped = 0
        self._last_good_logs = None

    def set_model(self, model):
        super().set_model(model)
        guard_nonfinite_steps(model)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_skipped = 0
        self._last_good_logs = None

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        if SKIPPED_KEY not in logs:
            raise RuntimeError(
                "SkipNonFiniteSteps: the train step reports no skipped flag; the model's train "
                "function was compiled without the guard."
            )
        step = self.first_step + batch + 1
        if not logs[SKIPPED_KEY]:
            self.consecutive = 0
            self._last_good_logs = {k: v for k, v in logs.items() if k != SKIPPED_KEY}
            return
        self.skipped_steps.append(step)
        self.consecutive += 1
        self._epoch_skipped += 1
        if self.verbose:
            warnings.warn(
                f"step {step} skipped: its loss or gradients are not finite "
                f"({self.consecutive} in a row, {len(self.skipped_steps)} in all); weights and "
                "optimizer state are unchanged",
                RuntimeWarning,
                stacklevel=2,
            )
        if self.consecutive >= self.max_consecutive:
            self.stopped = True
            self.model.stop_training = True
            last_good = step - self.consecutive
            self.message = (
                f"training stopped at step {step}: {self.consecutive} consecutive steps "
                f"({last_good + 1}-{step}) had a loss or gradients that are not finite, so training "
                f"diverged. The weights and optimizer state are those after step {last_good}. "
                "Lower the learning rate or check the data."
            )

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if logs.pop(SKIPPED_KEY, 0.0):  # the last step was skipped: its logs are not finite
            for name, value in (self._last_good_logs or {}).items():
                logs[name] = value
            if self._last_good_logs is None:
                for name in ("loss", *[m.name for m in self.model.metrics]):
                    if name in logs:
                        logs[name] = float("nan")
        logs["skipped_steps"] = self._epoch_skipped

    def raise_if_stopped(self):
        """Raise `TrainingDivergedError(message)` if training was stopped by this callback."""
        if self.stopped:
            raise TrainingDivergedError(self.message)
