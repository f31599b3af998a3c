"""The interface every bijective layer of the package implements."""

import keras
from keras import ops


class Bijector(keras.layers.Layer):
    """Base class of the invertible layers: forward map, inverse map, log-determinant.

    A bijector maps a batch `x` to `y = f(x)` and reports, per example, the
    log-absolute-determinant of the Jacobian `log|det df/dx|`:

    - `call(x, labels=None, training=False)` returns `(y, log_det)` with
      `log_det` of shape `(batch,)`;
    - `inverse(y, labels=None)` returns `x` (always in inference mode: a bijector
      with running statistics uses its stored ones).

    `labels` is an optional `(batch, K)` label vector; layers that do not use it
    ignore it. Subclasses implement `call`, `inverse` and `compute_output_shape`.

    Example:

    >>> import numpy as np
    >>> from keras_realnvp.bijectors import Squeeze
    >>> layer = Squeeze()
    >>> x = np.random.rand(2, 4, 4, 3).astype("float32")
    >>> y, log_det = layer(x)
    >>> tuple(y.shape), float(np.abs(layer.inverse(y) - x).max())
    ((2, 2, 2, 12), 0.0)
    """

    def call(self, x, labels=None, training=False):
        raise NotImplementedError

    def inverse(self, y, labels=None):
        raise NotImplementedError

    def zero_log_det(self, x):
        """A per-example zero log-determinant in the dtype of `x`."""
        return ops.zeros((ops.shape(x)[0],), dtype=x.dtype)


def sum_per_example(values):
    """Sum every axis but the first: per-example totals of a batch."""
    return ops.sum(ops.reshape(values, (ops.shape(values)[0], -1)), axis=-1)
