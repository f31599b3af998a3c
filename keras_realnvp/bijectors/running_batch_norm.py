"""The batch normalization of every coupling's output, as a bijector: appendix E's running
average (the paper's CIFAR-10 model) or ordinary batch statistics (its other datasets)."""

import keras
from keras import ops

from keras_realnvp.backend import replicas
from keras_realnvp.bijectors.bijector import Bijector


@keras.saving.register_keras_serializable(package="keras_realnvp")
class RunningBatchNorm(Bijector):
    """Per-channel batch normalization with its exact log-determinant (§3.7, appendix E).

    Two modes, as in the paper and the authors' code, differ only in training:

    - `"running_average"` (appendix E; the paper used it on CIFAR-10). In training, with
      current batch statistics `mu_hat`, `sigma_hat^2`, the layer normalizes with (eq. 20-21)

        mu_{t+1} = rho * mu_t + (1 - rho) * mu_hat_t
        sigma^2_{t+1} = rho * sigma^2_t + (1 - rho) * sigma_hat^2_t

      and stores them; gradients flow only through `mu_hat`, `sigma_hat^2`, never
      through the stored `mu_t`, `sigma^2_t`. This keeps training stable with small batches.
    - `"batch"` (ordinary batch normalization; the paper's other datasets, and the authors'
      default, `bn_lag = 0`). Training normalizes with `mu_hat`, `sigma_hat^2` themselves and
      stores the same moving averages as above for evaluation.

    The first training step has no history and stores the batch statistics themselves. In
    inference mode (evaluation, encoding, sampling) the stored averages are used in both
    modes, so the map is the same fixed affine bijection for every example. The
    log-determinant (eq. 18) is
    `-1/2 * sum_c log(sigma_c^2 + eps)` times the number of positions per channel,
    plus `log|gamma_c|` per position when `scale=True`.

    Under a `tf.distribute` strategy the batch statistics are those of the global batch
    (the replicas' sums are all-reduced, see `keras_realnvp.backend.replicas`), every replica
    stores the same averages, and the variables take the first replica's value
    (`aggregation="only_first_replica"`), so the mirrored copies never drift apart.

    Args:
        momentum: `rho` of eq. 20-21 (also of the stored averages in `"batch"` mode).
        epsilon: added to the variance.
        mode: `"running_average"` or `"batch"`: the statistics used in training (above).
        center: learn a shift `beta` applied after normalization.
        scale: learn a log-scale `log(gamma)` applied after normalization.

    Example:

    >>> import numpy as np
    >>> layer = RunningBatchNorm(momentum=0.9)
    >>> x = np.random.rand(8, 4, 4, 3).astype("float32")
    >>> y, log_det = layer(x, training=True)
    >>> np.allclose(np.asarray(layer.moving_mean), x.mean(axis=(0, 1, 2)), atol=1e-6)
    True
    >>> x_back = layer.inverse(layer(x)[0])  # inference mode: stored averages
    >>> float(np.abs(np.asarray(x_back) - x).max()) < 1e-5
    True
    >>> ordinary = RunningBatchNorm(momentum=0.9, mode="batch")
    >>> y, _ = ordinary(x + 5.0, training=True)   # normalized with this batch's statistics
    >>> bool(np.allclose(np.asarray(y).mean(axis=(0, 1, 2)), 0.0, atol=1e-5))
    True
    """

    MODES = ("running_average", "batch")

    def __init__(self, momentum=0.95, epsilon=1e-4, center=False, scale=False, mode="running_average", **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"`momentum` must lie in [0, 1), got {momentum}.")
        if mode not in self.MODES:
            raise ValueError(f"`mode` must be one of {self.MODES}, got {mode!r}.")
        self.mode = mode
        self.momentum = momentum
        self.epsilon = epsilon
        self.center = center
        self.scale = scale

    def build(self, input_shape):
        channels = (input_shape[-1],)
        self.moving_mean = self.add_weight(
            shape=channels, initializer="zeros", trainable=False, autocast=False,
            aggregation="only_first_replica", name="moving_mean",
        )
        self.moving_variance = self.add_weight(
            shape=channels, initializer="ones", trainable=False, autocast=False,
            aggregation="only_first_replica", name="moving_variance",
        )
        self.num_updates = self.add_weight(
            shape=(), initializer="zeros", dtype="int32", trainable=False,
            autocast=False, aggregation="only_first_replica", name="num_updates",
        )
        self.beta = self.add_weight(shape=channels, initializer="zeros", name="beta") if self.center else None
        self.log_gamma = (
            self.add_weight(shape=channels, initializer="zeros", name="log_gamma") if self.scale else None
        )

    def _statistics(self, x, training):
        mean = ops.cast(self.moving_mean, x.dtype)
        variance = ops.cast(self.moving_variance, x.dtype)
        if not training:
            return mean, variance
        axes = tuple(range(len(x.shape) - 1))
        # sum / count rather than ops.mean, which computes float64 input in float32;
        # replica_sum: the global batch's sums under tf.distribute (else the identity).
        count = replicas.replica_sum(ops.cast(ops.size(x) // ops.shape(x)[-1], x.dtype))
        batch_mean = replicas.replica_sum(ops.sum(x, axis=axes)) / count
        batch_variance = replicas.replica_sum(ops.sum(ops.square(x - batch_mean), axis=axes)) / count
        rho = self.momentum
        first = ops.equal(self.num_updates, 0)
        mean = ops.where(first, batch_mean, rho * ops.stop_gradient(mean) + (1.0 - rho) * batch_mean)
        variance = ops.where(
            first, batch_variance, rho * ops.stop_gradient(variance) + (1.0 - rho) * batch_variance
        )
        self.moving_mean.assign(ops.cast(ops.stop_gradient(mean), self.moving_mean.dtype))
        self.moving_variance.assign(ops.cast(ops.stop_gradient(variance), self.moving_variance.dtype))
        self.num_updates.assign(self.num_updates + 1)
        if self.mode == "batch":
            return batch_mean, batch_variance
        return mean, variance

    def _log_scale(self, variance, dtype):
        log_scale = -0.5 * ops.log(variance + self.epsilon)
        if self.scale:
            log_scale = log_scale + ops.cast(self.log_gamma, dtype)
        return log_scale

    def call(self, x, labels=None, training=False):
        mean, variance = self._statistics(x, training)
        log_scale = self._log_scale(variance, x.dtype)
        y = (x - mean) * ops.exp(log_scale)
        if self.center:
            y = y + ops.cast(self.beta, x.dtype)
        positions = 1
        for d in ops.shape(x)[1:-1]:
            positions = positions * d
        log_det = ops.sum(log_scale) * ops.cast(positions, log_scale.dtype)
        return y, ops.broadcast_to(log_det, (ops.shape(x)[0],))

    def inverse(self, y, labels=None):
        mean, variance = self._statistics(y, training=False)
        if self.center:
            y = y - ops.cast(self.beta, y.dtype)
        return y * ops.exp(-self._log_scale(variance, y.dtype)) + mean

    def compute_output_shape(self, input_shape):
        return input_shape, (input_shape[0],)

    def get_config(self):
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "mode": self.mode,
        }
