"""The s/t network of a coupling on vectors: a small MLP (the 2-D toy of figure 1)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_realnvp")
class CouplingMLP(keras.layers.Layer):
    """The fully connected counterpart of `CouplingResNet`, for rank-2 `(batch, features)` input.

    `Dense(units)` in, ReLU, then `num_layers` more `Dense(units)` + ReLU, then a `Dense`
    out to `output_units`. The output layer starts with small weights (standard deviation
    0.01) and zero bias, so the coupling starts near the identity while every parameter
    still receives a gradient. No weight normalization, hence no weight-scale
    parameters for the paper's L2 penalty.

    With `condition_dim`, a label vector `(batch, condition_dim)` is projected to `units`
    and added to the first hidden layer's pre-activation, as `CouplingResNet` does.

    Args:
        units: width of the hidden layers.
        num_layers: hidden layers after the first one.
        output_units: outputs (2x the coupling's transformed features).
        condition_dim: length of the label vector, or `None`.

    Example:

    >>> import numpy as np
    >>> net = CouplingMLP(units=16, num_layers=1, output_units=4)
    >>> tuple(net(np.random.rand(3, 2).astype("float32")).shape)
    (3, 4)
    """

    def __init__(self, units, num_layers, output_units, condition_dim=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.num_layers = num_layers
        self.output_units = output_units
        self.condition_dim = condition_dim

        def dense(size, name, **dense_kwargs):
            return keras.layers.Dense(size, dtype=self.dtype_policy, name=name, **dense_kwargs)

        self.stem = dense(units, "stem")
        self.condition_projection = dense(units, "condition_projection") if condition_dim else None
        self.hidden = [dense(units, f"hidden_{i}") for i in range(num_layers)]
        self.head = dense(output_units, "head", kernel_initializer=keras.initializers.RandomNormal(stddev=0.01))

    def build(self, input_shape):
        hidden_shape = (input_shape[0], self.units)
        self.stem.build(input_shape)
        if self.condition_projection is not None:
            self.condition_projection.build((input_shape[0], self.condition_dim))
        for layer in self.hidden:
            layer.build(hidden_shape)
        self.head.build(hidden_shape)

    def call(self, x, condition=None, training=False):
        h = self.stem(x)
        if self.condition_projection is not None:
            if condition is None:
                raise ValueError("This network is conditional: pass the label vector `condition`.")
            h = h + self.condition_projection(condition)
        h = ops.relu(h)
        for layer in self.hidden:
            h = ops.relu(layer(h))
        return self.head(h)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "num_layers": self.num_layers,
            "output_units": self.output_units,
            "condition_dim": self.condition_dim,
        }
