"""The s/t network of every coupling: a weight-normalized ResNet (§3.7, §4.1)."""

import keras
from keras import ops

from keras_realnvp.networks.weight_norm_conv import WeightNormConv2D


@keras.saving.register_keras_serializable(package="keras_realnvp")
class CouplingResNet(keras.layers.Layer):
    """The deep convolutional ResNet that computes a coupling's `s` and `t`.

    As in the authors' code: a 3x3 convolution in; `num_blocks` residual blocks of
    [BN, ReLU, 3x3 conv, BN, ReLU, 3x3 conv]; a 1x1 "skip" convolution of the stem and of
    every block's output, all summed; then BN, ReLU and a 1x1 convolution out to
    `output_channels`. Every convolution is weight-normalized. The last convolution
    starts with a small weight scale (0.1) and zero bias, so the coupling starts near
    the identity while every parameter still receives a gradient.

    With `condition_dim`, a label vector `(batch, condition_dim)` is projected to
    `filters` channels and added to the stem (appendix F's conditional model).

    Args:
        filters: hidden feature maps.
        num_blocks: residual blocks.
        output_channels: channels out (2x the coupling's transformed channels).
        condition_dim: length of the label vector, or `None`.
        bn_momentum: moving-average momentum of the inner batch normalizations.

    Example:

    >>> import numpy as np
    >>> net = CouplingResNet(filters=8, num_blocks=2, output_channels=6)
    >>> out = net(np.random.rand(2, 4, 4, 4).astype("float32"))
    >>> tuple(out.shape)
    (2, 4, 4, 6)
    """

    def __init__(self, filters, num_blocks, output_channels, condition_dim=None, bn_momentum=0.95, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.num_blocks = num_blocks
        self.output_channels = output_channels
        self.condition_dim = condition_dim
        self.bn_momentum = bn_momentum

        def batch_norm(name):
            return keras.layers.BatchNormalization(
                momentum=bn_momentum, epsilon=1e-4, dtype=self.dtype_policy, name=name
            )

        def conv(filters, size, name, **conv_kwargs):
            return WeightNormConv2D(filters, size, dtype=self.dtype_policy, name=name, **conv_kwargs)

        self.stem = conv(filters, 3, "stem")
        self.condition_projection = (
            keras.layers.Dense(filters, dtype=self.dtype_policy, name="condition_projection")
            if condition_dim
            else None
        )
        self.skips = [conv(filters, 1, f"skip_{i}") for i in range(num_blocks + 1)]
        # Flat, in order: [bn_a, conv_a, bn_b, conv_b] for each block.
        self.block_layers = []
        for i in range(num_blocks):
            self.block_layers += [
                batch_norm(f"block_{i}_bn_a"),
                conv(filters, 3, f"block_{i}_conv_a"),
                batch_norm(f"block_{i}_bn_b"),
                conv(filters, 3, f"block_{i}_conv_b"),
            ]
        self.head_norm = batch_norm("head_bn")
        self.head = conv(
            output_channels, 1, "head", scale_initializer=keras.initializers.Constant(0.1)
        )

    def build(self, input_shape, condition_shape=None):
        hidden_shape = (*input_shape[:-1], self.filters)
        self.stem.build(input_shape)
        if self.condition_projection is not None:
            self.condition_projection.build((input_shape[0], self.condition_dim))
        for skip in self.skips:
            skip.build(hidden_shape)
        for layer in self.block_layers:
            layer.build(hidden_shape)
        self.head_norm.build(hidden_shape)
        self.head.build(hidden_shape)

    def call(self, x, condition=None, training=False):
        h = self.stem(x)
        if self.condition_projection is not None:
            if condition is None:
                raise ValueError("This network is conditional: pass the label vector `condition`.")
            h = h + self.condition_projection(condition)[:, None, None, :]
        skip = self.skips[0](h)
        for i, skip_conv in enumerate(self.skips[1:]):
            bn_a, conv_a, bn_b, conv_b = self.block_layers[4 * i : 4 * i + 4]
            r = conv_a(ops.relu(bn_a(h, training=training)))
            r = conv_b(ops.relu(bn_b(r, training=training)))
            h = h + r
            skip = skip + skip_conv(h)
        return self.head(ops.relu(self.head_norm(skip, training=training)))

    def weight_scale_variables(self):
        """The weight-norm magnitudes `g` of every convolution (the L2-penalized ones)."""
        convs = [self.stem, *self.skips, self.head]
        convs += [layer for layer in self.block_layers if isinstance(layer, WeightNormConv2D)]
        return [conv.scale for conv in convs]

    def compute_output_shape(self, input_shape, condition_shape=None):
        return (*input_shape[:-1], self.output_channels)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "num_blocks": self.num_blocks,
            "output_channels": self.output_channels,
            "condition_dim": self.condition_dim,
            "bn_momentum": self.bn_momentum,
        }
