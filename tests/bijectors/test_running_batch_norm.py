"""The coupling-output batch normalization in both modes: appendix E's running averages
(eq. 20-21) and ordinary batch statistics; gradients, log-determinants, evaluation mode."""

import numpy as np
import pytest
from helpers import brute_force_log_det, gradient, randomize_weights, to_numpy
from keras import ops

from keras_realnvp import RealNVP
from keras_realnvp.bijectors import RunningBatchNorm


def test_running_averages_follow_eq_20_21(rng):
    rho = 0.8
    layer = RunningBatchNorm(momentum=rho, dtype="float64")
    batches = [rng.normal(loc=i, scale=1 + i, size=(6, 3, 3, 2)) for i in range(4)]
    mean = var = None
    for batch in batches:
        batch_mean = batch.mean(axis=(0, 1, 2))
        batch_var = batch.var(axis=(0, 1, 2))
        # The first step has no history: it starts the averages at the batch statistics.
        mean = batch_mean if mean is None else rho * mean + (1 - rho) * batch_mean
        var = batch_var if var is None else rho * var + (1 - rho) * batch_var
        y, log_det = layer(batch, training=True)
        # Training normalizes with the updated averages mu_{t+1}, sigma^2_{t+1} ...
        np.testing.assert_allclose(to_numpy(y), (batch - mean) / np.sqrt(var + 1e-4), rtol=1e-10)
        np.testing.assert_allclose(to_numpy(log_det), np.full(6, -0.5 * np.log(var + 1e-4).sum() * 9), rtol=1e-10)
        # ... and stores them.
        np.testing.assert_allclose(to_numpy(layer.moving_mean), mean, rtol=1e-10)
        np.testing.assert_allclose(to_numpy(layer.moving_variance), var, rtol=1e-10)
    assert int(to_numpy(layer.num_updates)) == 4


def test_gradients_flow_through_batch_statistics_only(rng):
    rho, eps = 0.7, 1e-4
    layer = RunningBatchNorm(momentum=rho, epsilon=eps, dtype="float64")
    layer(rng.normal(size=(5, 2, 2, 3)), training=True)  # some history
    stored_mean, stored_var = to_numpy(layer.moving_mean).copy(), to_numpy(layer.moving_variance).copy()
    weights = rng.normal(size=(5, 2, 2, 3))
    x = rng.normal(size=(5, 2, 2, 3))

    def reference(x):
        # y with the stored statistics as constants and the batch statistics as functions of x.
        mean = rho * stored_mean + (1 - rho) * x.mean(axis=(0, 1, 2))
        var = rho * stored_var + (1 - rho) * x.var(axis=(0, 1, 2))
        return np.sum(weights * (x - mean) / np.sqrt(var + eps))

    step = 1e-6
    expected = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += step
        down[index] -= step
        expected[index] = (reference(up) - reference(down)) / (2 * step)

    def objective(x):
        layer.moving_mean.assign(stored_mean)
        layer.moving_variance.assign(stored_var)
        return ops.multiply(layer(x, training=True)[0], ops.convert_to_tensor(weights))

    got = gradient(objective, x)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # Treating the batch statistics as constants would give a different gradient.
    frozen = weights / np.sqrt(rho * stored_var + (1 - rho) * x.var(axis=(0, 1, 2)) + eps)
    assert np.abs(got - frozen).max() > 1e-3


def test_batch_mode_normalizes_with_the_batch_and_stores_the_same_averages(rng):
    rho, eps = 0.8, 1e-4
    layer = RunningBatchNorm(momentum=rho, epsilon=eps, mode="batch", dtype="float64")
    mean = var = None
    for i in range(4):
        batch = rng.normal(loc=i, scale=1 + i, size=(6, 3, 3, 2))
        batch_mean, batch_var = batch.mean(axis=(0, 1, 2)), batch.var(axis=(0, 1, 2))
        mean = batch_mean if mean is None else rho * mean + (1 - rho) * batch_mean
        var = batch_var if var is None else rho * var + (1 - rho) * batch_var
        y, log_det = layer(batch, training=True)
        # Training: this batch's statistics, in the output and in the log-determinant (eq. 18) ...
        np.testing.assert_allclose(to_numpy(y), (batch - batch_mean) / np.sqrt(batch_var + eps), rtol=1e-10)
        np.testing.assert_allclose(to_numpy(log_det), np.full(6, -0.5 * np.log(batch_var + eps).sum() * 9), rtol=1e-10)
        # ... while the stored averages follow eq. 20-21, for evaluation.
        np.testing.assert_allclose(to_numpy(layer.moving_mean), mean, rtol=1e-10)
        np.testing.assert_allclose(to_numpy(layer.moving_variance), var, rtol=1e-10)


def test_batch_mode_gradients_flow_through_the_whole_batch_statistics(rng):
    eps = 1e-4
    layer = RunningBatchNorm(momentum=0.7, epsilon=eps, mode="batch", dtype="float64")
    layer(rng.normal(size=(5, 2, 2, 3)), training=True)  # some history, which must not matter
    weights = rng.normal(size=(5, 2, 2, 3))
    x = rng.normal(size=(5, 2, 2, 3))

    def reference(x):
        return np.sum(weights * (x - x.mean(axis=(0, 1, 2))) / np.sqrt(x.var(axis=(0, 1, 2)) + eps))

    step, expected = 1e-6, np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += step
        down[index] -= step
        expected[index] = (reference(up) - reference(down)) / (2 * step)
    got = gradient(lambda x: ops.multiply(layer(x, training=True)[0], ops.convert_to_tensor(weights)), x)
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("mode", RunningBatchNorm.MODES)
def test_evaluation_log_det_is_exact_in_both_modes(mode, rng):
    layer = RunningBatchNorm(momentum=0.6, mode=mode, center=True, scale=True, dtype="float64")
    for i in range(3):
        layer(rng.normal(1.0 + i, 2.0, size=(8, 2, 2, 3)), training=True)
    randomize_weights(layer, seed=1)
    x = rng.normal(size=(2, 2, 2, 3))
    _, log_det = layer(x)
    # Against the full Jacobian of the evaluation map (autodiff, float64): 1e-9.
    np.testing.assert_allclose(to_numpy(log_det), brute_force_log_det(lambda v: [layer(v)[0]], x), atol=1e-9)
    np.testing.assert_allclose(to_numpy(layer.inverse(layer(x)[0])), x, atol=1e-12)


@pytest.mark.parametrize("mode", RunningBatchNorm.MODES)
def test_inference_uses_stored_averages(mode, rng):
    layer = RunningBatchNorm(momentum=0.9, mode=mode)
    for _ in range(3):
        layer(rng.normal(2.0, 3.0, size=(8, 4, 4, 2)).astype("float32"), training=True)
    before = [to_numpy(v).copy() for v in layer.weights]
    x = rng.normal(size=(4, 4, 4, 2)).astype("float32")
    y, _ = layer(x)
    mean, var = to_numpy(layer.moving_mean), to_numpy(layer.moving_variance)
    np.testing.assert_allclose(to_numpy(y), (x - mean) / np.sqrt(var + 1e-4), rtol=1e-5, atol=1e-6)
    for b, v in zip(before, layer.weights):
        np.testing.assert_array_equal(to_numpy(v), b)  # inference never updates


@pytest.mark.parametrize("bn_mode", RunningBatchNorm.MODES)
def test_evaluation_bits_per_dim_does_not_depend_on_the_rest_of_the_batch(bn_mode, rng):
    model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1, bn_mode=bn_mode)
    randomize_weights(model, seed=0)
    x = rng.uniform(0, 256, size=(6, 8, 8, 3)).astype("float32")
    other = rng.uniform(0, 256, size=(6, 8, 8, 3)).astype("float32")
    alone = to_numpy(model.bits_per_dim(x[:1]))[0]
    mixed = np.concatenate([x[:1], other[1:]])
    np.testing.assert_allclose(to_numpy(model.bits_per_dim(x))[0], alone, rtol=1e-5)
    np.testing.assert_allclose(to_numpy(model.bits_per_dim(mixed))[0], alone, rtol=1e-5)
    # In training mode the batch does matter (batch statistics), as it should.
    train_a = to_numpy(model(x, training=True))[0]
    train_b = to_numpy(model(mixed, training=True))[0]
    assert abs(train_a - train_b) > 1e-3
