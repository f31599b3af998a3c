"""Composition of bijectors: log-determinants add up, inverses run in reverse."""

import keras

from keras_realnvp.bijectors.bijector import Bijector


@keras.saving.register_keras_serializable(package="keras_realnvp")
class BijectorChain(Bijector):
    """`f = f_n o ... o f_1`, with `log|det J_f| = sum_i log|det J_{f_i}|`.

    Args:
        bijectors: the layers, in forward order.

    Example:

    >>> import numpy as np
    >>> from keras_realnvp.bijectors import Logit, Squeeze
    >>> chain = BijectorChain([Logit(), Squeeze()])
    >>> x = 255.0 * np.random.rand(2, 4, 4, 1).astype("float32")
    >>> y, log_det = chain(x)
    >>> tuple(y.shape), float(np.abs(np.asarray(chain.inverse(y)) - x).max()) < 1e-3
    ((2, 2, 2, 4), True)
    """

    def __init__(self, bijectors, **kwargs):
        super().__init__(**kwargs)
        self.bijectors = [
            b if isinstance(b, keras.layers.Layer) else keras.saving.deserialize_keras_object(b)
            for b in bijectors
        ]

    def build(self, input_shape):
        shape = input_shape
        for bijector in self.bijectors:
            if not bijector.built:  # deserialized bijectors arrive built
                bijector.build(shape)
            shape = bijector.compute_output_shape(shape)[0]

    def call(self, x, labels=None, training=False):
        total = None
        for bijector in self.bijectors:
            x, log_det = bijector(x, labels=labels, training=training)
            total = log_det if total is None else total + log_det
        return x, total

    def inverse(self, y, labels=None):
        for bijector in reversed(self.bijectors):
            y = bijector.inverse(y, labels=labels)
        return y

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for bijector in self.bijectors:
            shape = bijector.compute_output_shape(shape)[0]
        return shape, (input_shape[0],)

    def get_config(self):
        return {
            **super().get_config(),
            "bijectors": [keras.saving.serialize_keras_object(b) for b in self.bijectors],
        }
