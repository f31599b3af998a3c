"""The s/t network of a coupling on vectors: a small MLP (the 2-D toy of figure 1)."""

import keras
from keras import ops

from keras_realnvp.config_migration import LABEL_DIM_RENAMES, VECTOR_NETWORK_RENAMES, rename_old_keys


@keras.saving.register_keras_serializable(package="keras_realnvp")
class CouplingMLP(keras.layers.Layer):
    """The fully connected counterpart of `CouplingResNet`, for rank-2 `(batch, features)` input.

    `Dense(filters)` in, ReLU, then `num_blocks` more `Dense(filters)` + ReLU, then a `Dense`
    out to `output_units`. The output layer starts with small weights (standard deviation
    0.01) and zero bias, so the coupling starts near the identity while every parameter
    still receives a gradient. No weight normalization, hence no weight-scale
    parameters for the paper's L2 penalty.

    With `label_dim`, a label vector `(batch, label_dim)` is projected to `filters` units
    and added to the first hidden layer's pre-activation, as `CouplingResNet` does.

    Args:
        filters: hidden units of each Dense layer (`CouplingResNet`'s `filters`: the width).
        num_blocks: hidden layers after the first one (`CouplingResNet`'s `num_blocks`: the depth).
        output_units: outputs (2x the coupling's transformed features).
        label_dim: length of the label vector, or `None`.

    Example:

    >>> import numpy as np
    >>> net = CouplingMLP(filters=16, num_blocks=1, output_units=4)
    >>> tuple(net(np.random.rand(3, 2).astype("float32")).shape)
    (3, 4)
    """

    def __init__(self, filters, num_blocks, output_units, label_dim=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.num_blocks = num_blocks
        self.output_units = output_units
        self.label_dim = label_dim

        def dense(size, name, **dense_kwargs):
            return keras.layers.Dense(size, dtype=self.dtype_policy, name=name, **dense_kwargs)

        # The attribute and layer names below are the weights' paths in saved models: keep them.
        self.stem = dense(filters, "stem")
        self.condition_projection = dense(filters, "condition_projection") if label_dim else None
        self.hidden = [dense(filters, f"hidden_{i}") for i in range(num_blocks)]
        self.head = dense(output_units, "head", kernel_initializer=keras.initializers.RandomNormal(stddev=0.01))

    def build(self, input_shape):
        hidden_shape = (input_shape[0], self.filters)
        self.stem.build(input_shape)
        if self.condition_projection is not None:
            self.condition_projection.build((input_shape[0], self.label_dim))
        for layer in self.hidden:
            layer.build(hidden_shape)
        self.head.build(hidden_shape)

    def call(self, x, labels=None, training=False):
        h = self.stem(x)
        if self.condition_projection is not None:
            if labels is None:
                raise ValueError("This network is conditional: pass the label vector `labels`.")
            h = h + self.condition_projection(labels)
        h = ops.relu(h)
        for layer in self.hidden:
            h = ops.relu(layer(h))
        return self.head(h)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_units)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "num_blocks": self.num_blocks,
            "output_units": self.output_units,
            "label_dim": self.label_dim,
        }

    # Config keys written under an older name, `{old: new}` (keras_realnvp.config_migration).
    renamed_config_keys = {**LABEL_DIM_RENAMES, **VECTOR_NETWORK_RENAMES}

    @classmethod
    def from_config(cls, config):
        """The network a config describes; a config written before a rename (`units`, `num_layers`,
        `condition_dim`) loads too.

        Example:

        >>> net = CouplingMLP.from_config({"units": 8, "num_layers": 2, "output_units": 4, "condition_dim": 3})
        >>> net.filters, net.num_blocks, net.label_dim
        (8, 2, 3)
        """
        return super().from_config(rename_old_keys(config, cls.renamed_config_keys))
