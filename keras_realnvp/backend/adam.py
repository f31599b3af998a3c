"""Adam's update of a list of variables: fused kernels on TensorFlow and PyTorch, `keras.ops` elsewhere.

Keras composes Adam's update of each variable from about forty `keras.ops` operations
(casts, two powers, the moments, the step), and the training optimizer pays for that on
two backends:

- TensorFlow traces, optimizes and runs each of them as a graph node, for every variable:
  for the 250 trainable variables of the tests' tiny model, 10,000 of the 20,000 nodes of a
  training step. Here each variable's update is the one fused kernel `ResourceApplyAdam`
  (the update of `tf.keras`' own Adam of old), one pass over the variable and its moments,
  and the bias corrections are computed once per step (`step_coefficients`), not once per
  variable.
- PyTorch runs each operation eagerly, one kernel and one temporary per operation and
  variable, for each of the cifar10 architecture's 1,160 variables. Here all variables of one
  dtype go through PyTorch's fused Adam kernel, `torch._fused_adam_`, in one call: one cifar10
  update, clip included, took 61.7 ms against 208.4 ms for `keras.optimizers.Adam` and 131.5 ms
  for the benchmark baseline's foreach Adam (`python -m keras_realnvp.benchmarks.optimizer_step`,
  2 cores of an AMD EPYC, 2026-12-04).

JAX needs neither: XLA fuses the composed update. It runs the reference `reference_adam_update`,
Keras' formula (`keras.optimizers.Adam.update_step`). `tests/backend/test_fused_adam.py` checks
the fused updates equal to it on every backend, step after step, under `tf.distribute` too.

The fused kernels round differently in two places:

- TensorFlow's forms `1 - beta_2` from `beta_2` in the variable's dtype, Keras from Python
  floats: in float32 `1 - float32(0.999)` is 0.00099998713, not 0.001. The second moment
  differs by 1.3e-5 relative (Adam with `beta_2` rounded to float32, as its bias correction
  already has it), a weight's step by half that.
- PyTorch's adds epsilon to `sqrt(velocity / (1 - beta_2**step))`, Keras to `sqrt(velocity)`;
  the epsilon handed to it is divided by `sqrt(1 - beta_2**step)`, which makes the two the
  same update up to rounding.

In float64 TensorFlow's kernel agrees with the reference to 1e-12, PyTorch's to about 1e-8
relative (measured on the moments after one step).
"""

import math

import keras
from keras import ops


def step_coefficients(learning_rate, step, beta_1, beta_2, dtype="float32"):
    """The scalars of one Adam step that every variable's update shares, as tensors of `dtype`.

    A dict: `learning_rate`; `step`, the 1-based number of the update; and Adam's
    bias-correction powers `beta_1_power = beta_1**step` and `beta_2_power = beta_2**step`.

    Example:

    >>> c = step_coefficients(1e-3, 2, 0.9, 0.999)
    >>> [round(float(c[k]), 4) for k in ("learning_rate", "step", "beta_1_power", "beta_2_power")]
    [0.001, 2.0, 0.81, 0.998]
    """
    step = ops.cast(step, dtype)
    return {
        "learning_rate": ops.cast(learning_rate, dtype),
        "step": step,
        "beta_1_power": ops.power(ops.cast(beta_1, dtype), step),
        "beta_2_power": ops.power(ops.cast(beta_2, dtype), step),
    }


def adam_update(variables, gradients, momentums, velocities, coefficients, beta_1, beta_2, epsilon):
    """Apply one Adam step to each of `variables` and its moments, in place.

    The update of `keras.optimizers.Adam` (without AMSGrad), with `coefficients` those of
    `step_coefficients` (cast to the variables' dtype where it differs), for each variable
    `w` with gradient `g` and moments `m`, `v`:

        m += (g - m) * (1 - beta_1)
        v += (g**2 - v) * (1 - beta_2)
        w -= learning_rate * sqrt(1 - beta_2_power) / (1 - beta_1_power) * m / (sqrt(v) + epsilon)

    The four lists are parallel; each variable and its moments share a shape, and all share
    one dtype, to which the gradients are cast. On TensorFlow each update is the fused kernel
    `ResourceApplyAdam` (inside a `tf.distribute` update, on each replica's copy; a sparse
    `tf.IndexedSlices` gradient is made dense first, as Keras' Adam's moment update does); on
    PyTorch all of them are one call of `torch._fused_adam_`; on JAX the update is
    `reference_adam_update`.

    Example:

    >>> import keras, numpy as np
    >>> w = keras.Variable(np.ones(3, "float32"))
    >>> m, v = keras.Variable(np.zeros(3, "float32")), keras.Variable(np.zeros(3, "float32"))
    >>> coefficients = step_coefficients(0.1, 1, 0.9, 0.999)
    >>> adam_update([w], [np.full(3, 2.0, "float32")], [m], [v], coefficients, 0.9, 0.999, 1e-7)
    >>> np.round(ops.convert_to_numpy(w), 4)  # the first step moves each weight by the learning rate
    array([0.9, 0.9, 0.9], dtype=float32)
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        _tensorflow_adam_update(variables, gradients, momentums, velocities, coefficients, beta_1, beta_2, epsilon)
    elif backend == "torch":
        _torch_adam_update(variables, gradients, momentums, velocities, coefficients, beta_1, beta_2, epsilon)
    else:
        reference_adam_update(variables, gradients, momentums, velocities, coefficients, beta_1, beta_2, epsilon)


def reference_adam_update(variables, gradients, momentums, velocities, coefficients, beta_1, beta_2, epsilon):
    """`adam_update` in `keras.ops`: `keras.optimizers.Adam.update_step`'s operations, in its order.

    Example:

    >>> import keras, numpy as np
    >>> w = keras.Variable(np.ones(2, "float32"))
    >>> m, v = keras.Variable(np.zeros(2, "float32")), keras.Variable(np.zeros(2, "float32"))
    >>> c = step_coefficients(0.5, 1, 0.9, 0.999)
    >>> reference_adam_update([w], [np.array([1.0, -1.0], "float32")], [m], [v], c, 0.9, 0.999, 1e-7)
    >>> np.round(ops.convert_to_numpy(w), 4)
    array([0.5, 1.5], dtype=float32)
    """
    for variable, gradient, momentum, velocity in zip(variables, gradients, momentums, velocities, strict=True):
        lr, _, beta_1_power, beta_2_power = _in_dtype(coefficients, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        momentum.assign_add(ops.multiply(ops.subtract(gradient, momentum), 1 - beta_1))
        velocity.assign_add(ops.multiply(ops.subtract(ops.square(gradient), velocity), 1 - beta_2))
        variable.assign_sub(ops.divide(ops.multiply(momentum, alpha), ops.add(ops.sqrt(velocity), epsilon)))


def _in_dtype(coefficients, dtype):
    # `ops.cast` to the dtype a tensor already has adds no operation.
    return [ops.cast(coefficients[k], dtype) for k in ("learning_rate", "step", "beta_1_power", "beta_2_power")]


def _tensorflow_adam_update(variables, gradients, momentums, velocities, coefficients, beta_1, beta_2, epsilon):
    import tensorflow as tf

    for variable, gradient, momentum, velocity in zip(variables, gradients, momentums, velocities, strict=True):
        dtype = variable.dtype
        lr, _, beta_1_power, beta_2_power = _in_dtype(coefficients, dtype)
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        # `.handle` of a Keras variable is its tf.Variable's; inside a `tf.distribute` update,
        # that of the copy on the replica being updated.
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=momentum.handle,
            v=velocity.handle,
            beta1_power=beta_1_power,
            beta2_power=beta_2_power,
            lr=lr,
            beta1=tf.constant(beta_1, dtype),
            beta2=tf.constant(beta_2, dtype),
            epsilon=tf.constant(epsilon, dtype),
            grad=ops.cast(gradient, dtype),
            use_locking=False,
        )


def _torch_adam_update(variables, gradients, momentums, velocities, coefficients, beta_1, beta_2, epsilon):
    import torch

    if not variables:
        return
    values = [v.value for v in variables]
    lr, step, _, beta_2_power = _in_dtype(coefficients, variables[0].dtype)
    # Keras adds epsilon to sqrt(v), PyTorch to sqrt(v / (1 - beta_2**step)).
    torch_epsilon = epsilon / math.sqrt(1.0 - float(beta_2_power))
    step = step.to(torch.float32)  # the kernel's type for the step count
    with torch.no_grad():
        torch._fused_adam_(
            values,
            [torch.as_tensor(g, device=values[0].device).to(values[0].dtype) for g in gradients],
            [m.value for m in momentums],
            [v.value for v in velocities],
            [],
            [step] * len(values),  # the kernel reads each variable's step; all share this one
            lr=lr,
            beta1=beta_1,
            beta2=beta_2,
            weight_decay=0.0,
            eps=torch_epsilon,
            amsgrad=False,
            maximize=False,
        )
