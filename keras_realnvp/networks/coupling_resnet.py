"""The s/t network of every coupling: a weight-normalized ResNet (§3.7, §4.1)."""

import keras
from keras import ops

from keras_realnvp.backend import fused_conv
from keras_realnvp.backend.batch_norm import batch_norm
from keras_realnvp.backend.batch_norm_relu_conv import batch_norm_relu_conv
from keras_realnvp.config_migration import LABEL_DIM_RENAMES, rename_old_keys
from keras_realnvp.networks.weight_norm_conv import WeightNormConv2D


def batch_norm_relu(bn, x, training, bias=None):
    """`relu(bn(x + bias))` for a `keras.layers.BatchNormalization` `bn` (axis -1), fused.

    The same values and the same moving-average updates as calling the layer, computed by
    `keras_realnvp.backend.batch_norm.batch_norm`: PyTorch's fused kernel on that backend,
    elsewhere one per-channel scale and shift, `relu(x * scale + shift)`. Keras' layer
    normalizes in several element-wise passes, which PyTorch runs one by one (compiled
    backends fuse them either way), and `bias`, the bias of the convolution before, is
    folded into the statistics instead of being added to the activations in a pass of its
    own. Statistics are computed in float32 at least, as the layer does (mixed precision),
    and under a `tf.distribute` strategy over the global batch, so every replica stores the
    same moving averages.

    Example:

    >>> import numpy as np
    >>> bn = keras.layers.BatchNormalization(epsilon=1e-4)
    >>> x = np.random.rand(2, 3, 3, 4).astype("float32")
    >>> bn.build(x.shape)
    >>> expected = np.maximum(ops.convert_to_numpy(bn(x + 0.5, training=False)), 0)
    >>> got = ops.convert_to_numpy(batch_norm_relu(bn, x, training=False, bias=np.full(4, 0.5, "float32")))
    >>> bool(np.allclose(got, expected, atol=1e-5))
    True
    """
    dtype = keras.backend.result_type(x.dtype, "float32")
    gamma = ops.cast(bn.gamma, dtype)
    beta = ops.cast(bn.beta, dtype)
    moving_mean = ops.cast(bn.moving_mean, dtype)
    moving_variance = ops.cast(bn.moving_variance, dtype)
    bias = None if bias is None else ops.cast(bias, dtype)
    if training and bn.trainable:
        y, mean, variance = batch_norm(x, gamma, beta, bn.epsilon, bias=bias, relu=True)
        _update_moving_averages(bn, mean, variance)
        return y
    y, _, _ = batch_norm(x, gamma, beta, bn.epsilon, moving_mean, moving_variance, bias=bias, relu=True)
    return y


def batch_norm_relu_convolve(bn, conv, x, training, bias=None):
    """`conv.convolve(batch_norm_relu(bn, x, training, bias))`, without keeping the ReLU's output in training.

    In training (batch statistics) through `keras_realnvp.backend.batch_norm_relu_conv`, whose
    backward pass recomputes the normalized activation from `x` instead of keeping it from the
    forward pass: about 40% less memory for a training step, the same values, gradients and
    moving-average updates. In evaluation, or for a frozen `bn`, `batch_norm_relu` then the
    convolution. `conv` is a `WeightNormConv2D` (its `convolve`: no bias).

    Example:

    >>> import numpy as np
    >>> from keras_realnvp.networks.weight_norm_conv import WeightNormConv2D
    >>> bn, conv = keras.layers.BatchNormalization(epsilon=1e-4), WeightNormConv2D(5, 3)
    >>> x = np.random.rand(2, 4, 4, 3).astype("float32")
    >>> bn.build(x.shape); conv.build(x.shape)
    >>> got = ops.convert_to_numpy(batch_norm_relu_convolve(bn, conv, x, training=True))
    >>> expected = ops.convert_to_numpy(conv.convolve(ops.relu(bn(x, training=True))))
    >>> bool(np.allclose(got, expected, atol=1e-4))
    True
    """
    if not (training and bn.trainable):
        return conv.convolve(batch_norm_relu(bn, x, training, bias=bias))
    dtype = keras.backend.result_type(x.dtype, "float32")
    kernel = conv.effective_kernel()
    y, mean, variance = batch_norm_relu_conv(
        x,
        ops.cast(bn.gamma, dtype),
        ops.cast(bn.beta, dtype),
        bn.epsilon,
        ops.cast(kernel, x.dtype),
        bias=None if bias is None else ops.cast(bias, dtype),
    )
    _update_moving_averages(bn, mean, variance)
    return y


def _update_moving_averages(bn, mean, variance):
    """`bn`'s moving averages moved towards a batch's statistics, as the Keras layer moves them."""
    momentum = bn.momentum
    dtype = keras.backend.result_type(mean.dtype, "float32")
    bn.moving_mean.assign(ops.cast(bn.moving_mean, dtype) * momentum + mean * (1.0 - momentum))
    bn.moving_variance.assign(ops.cast(bn.moving_variance, dtype) * momentum + variance * (1.0 - momentum))


def _inference_affine(bn):
    """`(scale, shift)`: a `keras.layers.BatchNormalization` (axis -1) in evaluation is `x * scale + shift`."""
    scale = bn.gamma * ops.rsqrt(bn.moving_variance + bn.epsilon)
    return scale, bn.beta - bn.moving_mean * scale


@keras.saving.register_keras_serializable(package="keras_realnvp")
class CouplingResNet(keras.layers.Layer):
    """The deep convolutional ResNet that computes a coupling's `s` and `t`.

    As in the authors' code: a 3x3 convolution in; `num_blocks` residual blocks of
    [BN, ReLU, 3x3 conv, BN, ReLU, 3x3 conv]; a 1x1 "skip" convolution of the stem and of
    every block's output, all summed; then BN, ReLU and a 1x1 convolution out to
    `output_channels`. Every convolution is weight-normalized. The last convolution
    starts with a small weight scale (0.1) and zero bias, so the coupling starts near
    the identity while every parameter still receives a gradient.

    With `label_dim`, a label vector `(batch, label_dim)` is projected to
    `filters` channels and added to the stem (appendix F's conditional model).

    Under a mixed policy (`"mixed_bfloat16"`) the head, its batch norm and 1x1 convolution,
    computes in the variables' dtype (float32), as Keras' mixed-precision guide advises for
    a model's outputs. `s` and `t` must resolve shifts far finer than bfloat16's 3
    significant digits (a dequantization step is 1/256 of the pixel range); a bfloat16 head
    trains far worse (docs/performance.md has the figures). The head is about 0.1% of the
    network's FLOPs.

    Args:
        filters: hidden feature maps.
        num_blocks: residual blocks.
        output_channels: channels out (2x the coupling's transformed channels).
        label_dim: length of the label vector, or `None`.
        bn_momentum: moving-average momentum of the inner batch normalizations.

    Example:

    >>> import numpy as np
    >>> net = CouplingResNet(filters=8, num_blocks=2, output_channels=6)
    >>> out = net(np.random.rand(2, 4, 4, 4).astype("float32"))
    >>> tuple(out.shape)
    (2, 4, 4, 6)
    """

    def __init__(self, filters, num_blocks, output_channels, label_dim=None, bn_momentum=0.95, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.num_blocks = num_blocks
        self.output_channels = output_channels
        self.label_dim = label_dim
        self.bn_momentum = bn_momentum

        policy = self.dtype_policy
        head_policy = policy  # mixed: the outputs in float32 (see above)
        if policy.compute_dtype != policy.variable_dtype:
            head_policy = keras.dtype_policies.DTypePolicy(policy.variable_dtype)

        def batch_norm(name, dtype=policy):
            return keras.layers.BatchNormalization(momentum=bn_momentum, epsilon=1e-4, dtype=dtype, name=name)

        def conv(filters, size, name, dtype=policy, **conv_kwargs):
            return WeightNormConv2D(filters, size, dtype=dtype, name=name, **conv_kwargs)

        # The attribute and layer names below are the weights' paths in saved models: keep them.
        self.stem = conv(filters, 3, "stem")
        self.condition_projection = (
            keras.layers.Dense(filters, dtype=self.dtype_policy, name="condition_projection")
            if label_dim
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
        self.head_norm = batch_norm("head_bn", dtype=head_policy)
        self.head = conv(
            output_channels, 1, "head", dtype=head_policy, scale_initializer=keras.initializers.Constant(0.1)
        )

    def build(self, input_shape):
        hidden_shape = (*input_shape[:-1], self.filters)
        self.stem.build(input_shape)
        if self.condition_projection is not None:
            self.condition_projection.build((input_shape[0], self.label_dim))
        for skip in self.skips:
            skip.build(hidden_shape)
        for layer in self.block_layers:
            layer.build(hidden_shape)
        self.head_norm.build(hidden_shape)
        self.head.build(hidden_shape)

    def call(self, x, labels=None, training=False):
        if not training and self._folds(x):
            return self.folded_call(x, labels)
        # No convolution bias is added to a feature map. The hidden maps are carried as
        # `h + h_bias`, `h_bias` a vector of the stem's and every block's conv_b's biases, which
        # the batch norms take as their `bias` (batch_norm_relu); conv_a's bias goes into bn_b
        # the same way. A 1x1 skip convolution maps the constant `h_bias` to the constant
        # `h_bias @ kernel`, so the skips' sum also has a vector bias, folded into head_norm.
        # The inner convolutions run through `convolve`, inside this layer's own call.
        h = self.stem.convolve(x)
        h_bias = ops.convert_to_tensor(self.stem.bias)
        if self.condition_projection is not None:
            if labels is None:
                raise ValueError("This network is conditional: pass the label vector `labels`.")
            h = h + self.condition_projection(labels)[:, None, None, :]
        head_dtype = self.head.compute_dtype
        skip, skip_bias = self._skip(self.skips[0], h, h_bias, head_dtype)
        for i, skip_conv in enumerate(self.skips[1:]):
            bn_a, conv_a, bn_b, conv_b = self.block_layers[4 * i : 4 * i + 4]
            r = batch_norm_relu_convolve(bn_a, conv_a, h, training, bias=h_bias)
            r = batch_norm_relu_convolve(bn_b, conv_b, r, training, bias=conv_a.bias)
            h = h + r
            h_bias = h_bias + conv_b.bias
            more, more_bias = self._skip(skip_conv, h, h_bias, head_dtype)
            skip = skip + more
            skip_bias = skip_bias + more_bias
        skip = ops.cast(skip, head_dtype)
        # The head through its own __call__, in its own dtype policy (float32 under mixed precision).
        return self.head(batch_norm_relu(self.head_norm, skip, training, bias=skip_bias))

    def _folds(self, x):
        """Whether evaluation runs `folded_call`: where `fused_conv` fuses (PyTorch, inference
        on a CPU, float32), with no mixed precision."""
        return self.compute_dtype == self.head.compute_dtype and fused_conv.fuses(x, self.stem.direction)

    def folded_call(self, x, labels=None):
        """The evaluation-mode output (moving statistics), with batch norms folded into convolutions.

        In evaluation a batch norm is a per-channel scale and shift. Each block's second
        batch norm (`bn_b`) reads conv_a's output alone, so its scale goes into conv_a's
        kernel and its shift into conv_a's bias; the head's batch norm reads the sum of the
        skips, so its scale goes into every skip's kernel and its shift into the first
        skip's bias. Every convolution then runs with its bias, its residual or skip sum and
        its ReLU in one `keras_realnvp.backend.fused_conv.conv2d` (on PyTorch the bias inside
        the convolution, the sum and the ReLU in place, with no new tensor): 9 of an s/t
        network's 17 batch norms and every separate bias pass are gone. Only the batch
        norms of the residual stream (`bn_a`), which the skips read unnormalized, remain.
        `call(..., training=False)` takes this path where `fused_conv` fuses (PyTorch on a
        CPU, float32, no gradient recorded); it gives the same values as the plain path on
        every backend, to float32 rounding.

        Example:

        >>> import numpy as np
        >>> net = CouplingResNet(filters=8, num_blocks=2, output_channels=6)
        >>> x = np.random.rand(2, 4, 4, 4).astype("float32")
        >>> plain = ops.convert_to_numpy(net(x, training=False))
        >>> bool(np.allclose(ops.convert_to_numpy(net.folded_call(x)), plain, atol=1e-5))
        True
        """
        conv2d = fused_conv.conv2d
        head_scale, head_shift = _inference_affine(self.head_norm)
        h = conv2d(x, self.stem.effective_kernel(), self.stem.bias)
        if self.condition_projection is not None:
            if labels is None:
                raise ValueError("This network is conditional: pass the label vector `labels`.")
            h = h + self.condition_projection(labels)[:, None, None, :]
        first = self.skips[0]
        skip = conv2d(
            h, first.effective_kernel() * head_scale, first.bias * head_scale + head_shift, relu=not self.num_blocks
        )
        for i, skip_conv in enumerate(self.skips[1:]):
            bn_a, conv_a, bn_b, conv_b = self.block_layers[4 * i : 4 * i + 4]
            scale, shift = _inference_affine(bn_b)
            r = batch_norm_relu(bn_a, h, training=False)
            r = conv2d(r, conv_a.effective_kernel() * scale, conv_a.bias * scale + shift, relu=True)
            h = conv2d(r, conv_b.effective_kernel(), conv_b.bias, add=h)
            kernel, bias = skip_conv.effective_kernel() * head_scale, skip_conv.bias * head_scale
            skip = conv2d(h, kernel, bias, add=skip, relu=i == self.num_blocks - 1)
        return conv2d(skip, self.head.effective_kernel(), self.head.bias)

    @staticmethod
    def _skip(conv, h, h_bias, bias_dtype):
        """`(conv(h) without bias, conv's output for the constant input h_bias, with bias)`."""
        kernel = conv.effective_kernel()
        bias = ops.matmul(ops.cast(h_bias, bias_dtype)[None, :], ops.cast(kernel[0, 0], bias_dtype))[0]
        return conv.convolve(h, kernel), bias + ops.cast(conv.bias, bias_dtype)

    def weight_scale_variables(self):
        """The weight-norm magnitudes `g` that the paper's L2 penalty covers.

        Those of the convolutions that have a `magnitude` in the authors' code: every 1x1
        skip, every block's second 3x3 convolution (`conv_b`) and the head. The stem and each
        block's first convolution (`conv_a`) have no magnitude there (a pure direction), and
        their `g` here is not penalized: `conv_a`'s feeds a batch norm, which undoes any scale
        of it, so a penalty would only shrink it for nothing.

        Example:

        >>> net = CouplingResNet(filters=8, num_blocks=2, output_channels=6)
        >>> net.build((None, 4, 4, 4))
        >>> sorted(v.path.split("/")[-2] for v in net.weight_scale_variables())
        ['block_0_conv_b', 'block_1_conv_b', 'head', 'skip_0', 'skip_1', 'skip_2']
        """
        conv_bs = self.block_layers[3::4]
        return [conv.scale for conv in (*self.skips, *conv_bs, self.head)]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_channels)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "num_blocks": self.num_blocks,
            "output_channels": self.output_channels,
            "label_dim": self.label_dim,
            "bn_momentum": self.bn_momentum,
        }

    # Config keys written under an older name, `{old: new}` (keras_realnvp.config_migration).
    renamed_config_keys = LABEL_DIM_RENAMES

    @classmethod
    def from_config(cls, config):
        """The network a config describes; a config written before a rename (`condition_dim`) loads too.

        Example:

        >>> config = {"filters": 4, "num_blocks": 1, "output_channels": 2, "condition_dim": 3}
        >>> CouplingResNet.from_config(config).label_dim
        3
        """
        return super().from_config(rename_old_keys(config, cls.renamed_config_keys))
