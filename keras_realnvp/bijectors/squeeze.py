"""The squeeze of section 3.6: each 2x2xc block becomes a 1x1x4c block."""

import keras
from keras import ops

from keras_realnvp.bijectors.bijector import Bijector


@keras.saving.register_keras_serializable(package="keras_realnvp")
class Squeeze(Bijector):
    """Space-to-depth: `(N, H, W, C) -> (N, H/2, W/2, 4C)`, a permutation (log-det 0).

    Output channel `(2 * di + dj) * C + c` holds input pixel `(2i + di, 2j + dj, c)`.
    The first half of the output channels is therefore the top row of every 2x2 block,
    which holds one pixel of each checkerboard colour: a channel mask after a squeeze
    is never the checkerboard partition again (the non-redundancy asked in §3.6).

    Example:

    >>> import numpy as np
    >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    >>> y, _ = Squeeze()(x)
    >>> np.asarray(y)[0, 0, 0].tolist()
    [0.0, 1.0, 4.0, 5.0]
    """

    def build(self, input_shape):
        _check_even(input_shape, "Squeeze")
        super().build(input_shape)

    def call(self, x, labels=None, training=False):
        _check_even(x.shape, "Squeeze")
        n, h, w, c = ops.shape(x)
        y = ops.reshape(x, (n, h // 2, 2, w // 2, 2, c))
        y = ops.transpose(y, (0, 1, 3, 2, 4, 5))
        return ops.reshape(y, (n, h // 2, w // 2, 4 * c)), self.zero_log_det(x)

    def inverse(self, y, labels=None):
        if len(y.shape) != 4 or (y.shape[-1] is not None and y.shape[-1] % 4):
            raise ValueError(f"Squeeze.inverse expects (N, H, W, 4C) inputs, got shape {tuple(y.shape)}.")
        n, h, w, c4 = ops.shape(y)
        c = c4 // 4
        x = ops.reshape(y, (n, h, w, 2, 2, c))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (n, 2 * h, 2 * w, c))

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        h = None if h is None else h // 2
        w = None if w is None else w // 2
        return (n, h, w, 4 * c), (n,)


def _check_even(shape, name):
    if len(shape) != 4:
        raise ValueError(f"{name} expects (N, H, W, C) inputs, got shape {tuple(shape)}.")
    odd = [d for d in shape[1:3] if d is not None and d % 2]
    if odd:
        raise ValueError(f"{name} needs an even height and width, got shape {tuple(shape)}.")
