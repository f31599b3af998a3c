"""Uniform dequantization of integer pixels (§3.1 / §4.1): a seeded, separate step."""

import keras
from keras import ops

from keras_realnvp.backend.replicas import global_batch_slice


@keras.saving.register_keras_serializable(package="keras_realnvp")
class UniformDequantization(keras.layers.Layer):
    """`x + u` with `u ~ U[0, 1)^D`: integer pixels 0..255 become values in [0, 256).

    Not a bijection and not part of the density: it turns the discrete data into a
    continuous sample whose density bounds the discrete likelihood. Fresh noise is
    drawn at every call from the layer's own `keras.random.SeedGenerator` (so every
    training step sees new noise, also inside compiled JAX code). The generator's state
    is saved with the weights, so a resumed run draws the noise an uninterrupted one would.

    Args:
        seed: seed of the generator (`None`: unseeded).

    Example:

    >>> import numpy as np
    >>> layer = UniformDequantization(seed=0)
    >>> pixels = np.array([[0, 17, 255]], dtype="uint8")
    >>> x = np.asarray(layer(pixels))
    >>> bool(np.all((x >= pixels) & (x < pixels + 1.0)))
    True
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="dequantization_seed")

    def call(self, pixels):
        x = ops.cast(pixels, self.compute_dtype)
        # Under tf.distribute every replica draws the global batch's noise and keeps its rows:
        # the same noise as on one device (keras_realnvp.backend.replicas).
        noise = global_batch_slice(
            lambda shape: keras.random.uniform(shape, dtype=self.compute_dtype, seed=self.seed_generator),
            ops.shape(x),
        )
        return x + noise

    def compute_output_shape(self, input_shape):
        return input_shape

    # Keras does not save a SeedGenerator's state with the weights; a training run that
    # resumes from a checkpoint must continue the same noise sequence, so it is saved here.
    def save_own_variables(self, store):
        store["0"] = ops.convert_to_numpy(self.seed_generator.state)

    def load_own_variables(self, store):
        if "0" in store:  # files written before the state was saved lack it
            self.seed_generator.state.assign(store["0"][...])

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
