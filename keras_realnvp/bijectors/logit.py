"""The logit preprocessing of section 4.1: pixels in [0, 256) to the real line."""

import math

import keras
from keras import ops

from keras_realnvp.bijectors.bijector import Bijector, sum_per_example


@keras.saving.register_keras_serializable(package="keras_realnvp")
class Logit(Bijector):
    """`y = logit(alpha + (1 - 2 alpha) x / 256)`, with its exact log-determinant.

    Maps dequantized pixel values `x` in [0, 256) onto the real line. The squashing
    onto [alpha, 1 - alpha] (the authors' `data_constraint = 1 - 2 alpha = 0.9`) keeps
    the logit finite at both ends: a pixel at 0 or at 255.999 maps to about -2.94 or
    +2.94. The log-determinant carries the 1/256 factor, so densities are on the
    [0, 256)^D scale that bits/dim is defined on.

    Args:
        alpha: the margin kept away from 0 and 1, in (0, 0.5).

    Example:

    >>> import numpy as np
    >>> layer = Logit(alpha=0.05)
    >>> x = np.array([[0.0, 128.0, 255.5]], dtype="float32")
    >>> y, log_det = layer(x)
    >>> np.round(np.asarray(y, dtype="float64"), 3).tolist()
    [[-2.944, 0.0, 2.908]]
    >>> float(np.abs(np.asarray(layer.inverse(y)) - x).max()) < 1e-3
    True
    """

    def __init__(self, alpha=0.05, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < alpha < 0.5:
            raise ValueError(f"`alpha` must lie in (0, 0.5), got {alpha}.")
        self.alpha = alpha

    def call(self, x, labels=None, training=False):
        p = self.alpha + (1.0 - 2.0 * self.alpha) * x / 256.0
        log_p = ops.log(p)
        log_one_minus_p = ops.log1p(-p)
        y = log_p - log_one_minus_p
        scale = math.log((1.0 - 2.0 * self.alpha) / 256.0)
        log_det = sum_per_example(scale - log_p - log_one_minus_p)
        return y, log_det

    def inverse(self, y, labels=None):
        return (ops.sigmoid(y) - self.alpha) * (256.0 / (1.0 - 2.0 * self.alpha))

    def compute_output_shape(self, input_shape):
        return input_shape, (input_shape[0],)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}
