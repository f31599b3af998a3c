"""The training optimizer's Adam update equals Keras' Adam, and is fused on TensorFlow.

`GlobalBatchAdam` updates each variable through `keras_realnvp.backend.adam.adam_update`
(TensorFlow's `ResourceApplyAdam`, the `keras.ops` reference elsewhere). Checked here on every
backend: step after step (with an engaged gradient clip and a learning-rate schedule), eagerly
and compiled, its variables and moments equal those of `keras.optimizers.Adam` to 1e-5
in float32 (2e-5 relative for the second moments on TensorFlow, whose kernel rounds
`1 - beta_2` in float32: see `keras_realnvp.backend.adam`) and to 1e-12 in float64 (1e-6 on
PyTorch); the function equals its reference; AMSGrad is
Keras' own; under `tf.distribute` on two devices the update is the single-device one. On
TensorFlow the point of it is checked too: one graph node per variable update.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from keras_realnvp.backend import adam
from keras_realnvp.training import GlobalBatchAdam

SHAPES = [(3, 3, 2, 4), (4,), (5, 2), ()]
STEPS = 5


def _tolerance(label, dtype):
    """What the fused kernels' rounding allows (see `keras_realnvp.backend.adam`)."""
    backend = keras.backend.backend()
    if dtype == "float64":
        # PyTorch's kernel agrees with the reference to about 1e-8 relative in float64, per step.
        return dict(rtol=1e-6, atol=1e-7) if backend == "torch" else dict(rtol=1e-12, atol=1e-14)
    if label == "velocities" and backend == "tensorflow":
        return dict(rtol=2e-5, atol=1e-6)  # 1 - float32(0.999) is 1.3e-5 relative off 0.001
    return dict(rtol=1e-5, atol=1e-5)

def _gradients(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [[rng.normal(0.0, 3.0, shape).astype(dtype) for shape in SHAPES] for _ in range(STEPS)]


def _variables(dtype):
    rng = np.random.default_rng(1)
    return [keras.Variable(rng.normal(size=shape).astype(dtype), dtype=dtype) for shape in SHAPES]


def _schedule():
    return keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)


def _run(optimizer, dtype, compiled):
    """Variables, first moments and second moments after `STEPS` updates from the same start."""
    variables = _variables(dtype)
    optimizer.build(variables)
    backend = keras.backend.backend()
    for grads in _gradients(dtype):
        if compiled and backend == "tensorflow":
            import tensorflow as tf

            tf.function(lambda g: optimizer.apply(g, variables))([tf.constant(g) for g in grads])
        elif compiled and backend == "jax":
            import jax

            state = [v.value for v in variables], [v.value for v in optimizer.variables]
            new_vars, new_opt = jax.jit(optimizer.stateless_apply)(state[1], grads, state[0])
            for v, value in zip([*variables, *optimizer.variables], [*new_vars, *new_opt]):
                v.assign(value)
        else:
            optimizer.apply([ops.convert_to_tensor(g) for g in grads], variables)
    moments = [[optimizer._momentums[i], optimizer._velocities[i]] for i in range(len(variables))]
    return [[ops.convert_to_numpy(v) for v in group] for group in (variables, *zip(*moments))]


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_global_batch_adam_equals_keras_adam_step_after_step(dtype, compiled):
    if compiled and keras.backend.backend() == "torch":
        pytest.skip("the PyTorch backend compiles nothing here")
    settings = dict(learning_rate=_schedule(), global_clipnorm=20.0)  # the gradients' norm is about 25
    ours = _run(GlobalBatchAdam(**settings), dtype, compiled)
    keras_adam = _run(keras.optimizers.Adam(**settings), dtype, compiled)
    start = [ops.convert_to_numpy(v) for v in _variables(dtype)]
    for label, got, expected in zip(("variables", "momentums", "velocities"), ours, keras_adam):
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, **_tolerance(label, dtype), err_msg=label)
    # Five steps of up to 0.1, 0.05, 0.05, 0.025, ...: far from the start, so a no-op would fail.
    moved = [np.abs(v - s).mean() for v, s in zip(ours[0], start)]
    assert min(moved) > 0.05, moved


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adam_update_equals_the_reference(dtype):
    rng = np.random.default_rng(2)
    gradient = rng.normal(size=(6, 3)).astype(dtype)
    start = [rng.normal(size=(6, 3)).astype(dtype), rng.normal(size=(6, 3)).astype(dtype),
             np.abs(rng.normal(size=(6, 3))).astype(dtype)]
    states = []
    for update in (adam.adam_update, adam.reference_adam_update):
        variable, momentum, velocity = (keras.Variable(s, dtype=dtype) for s in start)
        for step in (1, 2, 3):
            update([variable], [gradient * step], [momentum], [velocity],
                   adam.step_coefficients(0.01, step, 0.9, 0.999, dtype), 0.9, 0.999, 1e-7)
        states.append([ops.convert_to_numpy(v) for v in (variable, momentum, velocity)])
    assert not np.allclose(states[0][0], start[0], atol=1e-3)
    for got, expected, label in zip(*states, ("variables", "momentums", "velocities")):
        np.testing.assert_allclose(got, expected, **_tolerance(label, dtype), err_msg=label)


def test_amsgrad_is_keras_own_update():
    settings = dict(learning_rate=0.05, amsgrad=True)
    ours = _run(GlobalBatchAdam(**settings), "float32", compiled=False)
    keras_adam = _run(keras.optimizers.Adam(**settings), "float32", compiled=False)
    for got, expected in zip(ours, keras_adam):
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-7)  # the same code


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="graph nodes are TensorFlow's")
def test_tensorflow_updates_each_variable_with_one_graph_node():
    import tensorflow as tf

    def nodes(optimizer):
        variables = [keras.Variable(np.zeros((4, 4), "float32")) for _ in range(50)]
        optimizer.build(variables)
        grads = [tf.TensorSpec((4, 4), tf.float32)] * len(variables)
        graph = tf.function(lambda g: optimizer.apply(g, variables)).get_concrete_function(grads).graph
        return [node.op for node in graph.as_graph_def().node]

    ours, keras_adam = nodes(GlobalBatchAdam(1e-3)), nodes(keras.optimizers.Adam(1e-3))
    assert ours.count("ResourceApplyAdam") == 50
    assert ours.count("Pow") == 2  # the bias corrections, once per step
    assert len(ours) < len(keras_adam) / 4, (len(ours), len(keras_adam))


TF_DISTRIBUTED = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]  # two logical devices, before TensorFlow initializes
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import numpy as np
from keras_realnvp.training import GlobalBatchAdam

rng = np.random.default_rng(0)
start = [rng.normal(size=shape).astype("float32") for shape in [(3, 4), (4,)]]
# Per replica, per step: a gradient for each variable; the update sees their sum.
grads = rng.normal(size=(3, 2, 16)).astype("float32")


def split(g):
    return [g[:12].reshape(3, 4), g[12:]]


def train(strategy):
    with strategy.scope():
        variables = [keras.Variable(s) for s in start]
        optimizer = GlobalBatchAdam(learning_rate=0.1, global_clipnorm=1.0)
        optimizer.build(variables)

    @tf.function
    def step(per_replica):
        strategy.run(lambda g: optimizer.apply(g, variables), args=(per_replica,))

    for g in grads:
        if strategy.num_replicas_in_sync == 2:
            step(strategy.experimental_distribute_values_from_function(
                lambda context: [tf.constant(a) for a in split(g[context.replica_id_in_sync_group])]))
        else:
            step([tf.constant(a) for a in split(g.sum(axis=0))])
    values = [v.value for v in [*variables, *optimizer._momentums, *optimizer._velocities]]
    copies = [strategy.experimental_local_results(v) for v in values]
    return [c[0].numpy().tolist() for c in copies], all(
        np.array_equal(c[0].numpy(), other.numpy()) for c in copies for other in c[1:])


mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
distributed, copies_agree = train(mirrored)
single, _ = train(tf.distribute.get_strategy())
print(json.dumps({"replicas": mirrored.num_replicas_in_sync, "distributed": distributed,
                  "single": single, "copies_agree": copies_agree}))
"""


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute runs on TensorFlow only")
def test_mirrored_strategy_on_two_devices_gives_the_single_device_update():
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run([sys.executable, "-c", TF_DISTRIBUTED], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout.strip().splitlines()[-1])
    assert outputs["replicas"] == 2 and outputs["copies_agree"]
    for got, expected in zip(outputs["distributed"], outputs["single"]):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
