"""Factoring out half of the units at each scale (section 3.6, eq. 13-16)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_realnvp")
class FactorOut(keras.layers.Layer):
    """Split the channels in two: the first half leaves as a latent, the rest goes on.

    `call(h)` returns `(z, h_next)`; `merge(z, h_next)` is its inverse. The split is a
    permutation of the units, so its log-determinant is 0 and it is not reported.

    Example:

    >>> import numpy as np
    >>> h = np.random.rand(2, 4, 4, 12).astype("float32")
    >>> z, rest = FactorOut()(h)
    >>> tuple(z.shape), tuple(rest.shape)
    ((2, 4, 4, 6), (2, 4, 4, 6))
    >>> bool(np.all(np.asarray(FactorOut().merge(z, rest)) == h))
    True
    """

    def call(self, h):
        c = ops.shape(h)[-1]
        if c % 2:
            raise ValueError(f"FactorOut needs an even channel count, got {c}.")
        return h[..., : c // 2], h[..., c // 2 :]

    def merge(self, z, h_next):
        """The inverse of `call`: put the factored-out half back in front."""
        return ops.concatenate([z, h_next], axis=-1)

    def compute_output_shape(self, input_shape):
        half = (*input_shape[:-1], input_shape[-1] // 2)
        return half, half
