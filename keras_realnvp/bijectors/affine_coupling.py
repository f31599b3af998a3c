"""The affine coupling layer of eq. 9, with checkerboard or channel masks."""

import keras
from keras import ops

from keras_realnvp.bijectors.bijector import Bijector, sum_per_example
from keras_realnvp.bijectors.masks import (
    MASK_TYPES,
    channel_halves,
    checkerboard_mask,
    merge_channel_halves,
    parity_mask,
)
from keras_realnvp.config_migration import LABEL_DIM_RENAMES, rename_old_keys
from keras_realnvp.networks.coupling_mlp import CouplingMLP
from keras_realnvp.networks.coupling_resnet import CouplingResNet


@keras.saving.register_keras_serializable(package="keras_realnvp")
class AffineCoupling(Bijector):
    """`y = b * x + (1 - b) * (x * exp(s(b * x)) + t(b * x))` (eq. 9).

    `s = scale * tanh(net_s)` with a learned per-channel `scale` that starts at 0 (so the
    coupling starts as the identity in `s`), and `t = net_t` is affine. `net` is a
    `CouplingResNet`. `log|det| = sum of s` over the transformed units. The inverse
    never inverts `s` or `t`: `x = b * y + (1 - b) * (y - t(b * y)) * exp(-s(b * y))`.

    Masks:
    - `"checkerboard"`: `b = 1` where `row + col` is odd (`reverse=True`: where it is
      even). The network sees `b * x` and `b` itself as an extra channel.
    - `"channel"`: `b = 1` on the first half of the channels (`reverse=True`: the second
      half). The network sees the kept half only.

    Vectors: a rank-2 input `(batch, features)` (the 2-D toy of figure 1) uses the same
    equations with masks over the feature index: `"checkerboard"` is `b = 1` on the odd
    features (`reverse=True`: the even ones; `masks.parity_mask`), `"channel"` is the
    halves as above. The s/t network is then a `CouplingMLP` with `filters` hidden units
    and `num_blocks` + 1 hidden layers, which sees `b * x` (checkerboard) or the kept
    half (channel). Images (rank 4) are unaffected.

    Args:
        mask_type: `"checkerboard"` or `"channel"`.
        reverse: use the complement of the mask.
        filters: hidden maps of the s/t network (hidden units for vectors).
        num_blocks: residual blocks of the s/t network (for vectors: hidden layers
            after the first).
        label_dim: length of an optional label vector the network also sees.
        bn_momentum: momentum of the network's inner batch normalizations.
        network_dtype: dtype policy of the s/t network (default: the layer's own). With
            `"mixed_bfloat16"` here and a float32 layer, the network runs in bfloat16 while
            `x`, `y`, `s`, `t` and the log-determinant stay float32 (what `RealNVP` does
            under a mixed policy).

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> layer = AffineCoupling("checkerboard", filters=8, num_blocks=1)
    >>> x = np.random.randn(2, 4, 4, 3).astype("float32")
    >>> y, log_det = layer(x)
    >>> float(np.abs(ops.convert_to_numpy(layer.inverse(y)) - x).max()) < 1e-5
    True
    >>> vector_layer = AffineCoupling("checkerboard", filters=16, num_blocks=1)
    >>> v = np.random.randn(5, 2).astype("float32")
    >>> w, log_det = vector_layer(v)
    >>> tuple(w.shape), float(np.abs(ops.convert_to_numpy(vector_layer.inverse(w)) - v).max()) < 1e-5
    ((5, 2), True)
    """

    def __init__(
        self,
        mask_type,
        reverse=False,
        filters=64,
        num_blocks=8,
        label_dim=None,
        bn_momentum=0.95,
        network_dtype=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if mask_type not in MASK_TYPES:
            raise ValueError(f"`mask_type` must be one of {MASK_TYPES}, got {mask_type!r}.")
        self.mask_type = mask_type
        self.reverse = reverse
        self.filters = filters
        self.num_blocks = num_blocks
        self.label_dim = label_dim
        self.bn_momentum = bn_momentum
        self.network_dtype = None if network_dtype is None else keras.dtype_policies.get(network_dtype)
        self.net = None

    def build(self, input_shape):
        if len(input_shape) not in (2, 4):
            raise ValueError(
                "AffineCoupling takes images (batch, height, width, channels) or vectors (batch, features), "
                f"got input shape {tuple(input_shape)}."
            )
        channels = input_shape[-1]
        if self.mask_type == "channel":
            if channels % 2:
                raise ValueError(f"A channel-mask coupling needs an even channel count, got {channels}.")
            net_in, transformed = channels // 2, channels // 2
        elif len(input_shape) == 2:
            net_in, transformed = channels, channels
        else:
            net_in, transformed = channels + 1, channels
        net_dtype = self.dtype_policy if self.network_dtype is None else self.network_dtype
        if len(input_shape) == 2:
            self.net = CouplingMLP(
                self.filters,
                self.num_blocks,
                2 * transformed,
                label_dim=self.label_dim,
                dtype=net_dtype,
                name="st_net",
            )
        else:
            self.net = CouplingResNet(
                self.filters,
                self.num_blocks,
                2 * transformed,
                label_dim=self.label_dim,
                bn_momentum=self.bn_momentum,
                dtype=net_dtype,
                name="st_net",
            )
        self.net.build((*input_shape[:-1], net_in))
        self.scale = self.add_weight(shape=(transformed,), initializer="zeros", name="scale")

    def _shift_and_log_scale(self, net_input, labels, training):
        # Back to the layer's dtype (float32 when only the network runs in bfloat16).
        out = ops.cast(self.net(net_input, labels=labels, training=training), self.compute_dtype)
        c = out.shape[-1] // 2
        log_scale = self.scale * ops.tanh(out[..., :c])
        return out[..., c:], log_scale

    def _checkerboard_mask(self, x):
        shape = ops.shape(x)
        if len(shape) == 2:
            return parity_mask(shape[1], self.reverse, x.dtype)
        return checkerboard_mask(shape[1], shape[2], self.reverse, x.dtype)

    def _checkerboard_net_input(self, x, mask):
        if len(ops.shape(x)) == 2:
            # The mask over features is the same for every example: no extra input.
            return x * mask
        batch_mask = ops.broadcast_to(mask, (*ops.shape(x)[:-1], 1))
        return ops.concatenate([x * mask, batch_mask], axis=-1)

    def _terms(self, x, labels, training):
        # (t, s, the transformed units 1 - b or None for a channel mask, the channel halves or None)
        if self.mask_type == "channel":
            kept, moving = channel_halves(x, self.reverse)
            shift, log_scale = self._shift_and_log_scale(kept, labels, training)
            return shift, log_scale, None, (kept, moving)
        mask = self._checkerboard_mask(x)
        shift, log_scale = self._shift_and_log_scale(self._checkerboard_net_input(x, mask), labels, training)
        return shift, log_scale, 1.0 - mask, None

    def shift_and_log_scale(self, x, labels=None, training=False):
        """`(t, s, transformed)` of the coupling at its input `x`: what `call` applies, for inspection.

        `s = scale * tanh(net_s)` and `t = net_t` are the network's outputs before the mask;
        `transformed` has their shape and is 1 on the units the coupling changes (`1 - b`)
        and 0 on those it passes through, so `y = x * exp(s * transformed) + t * transformed`
        on those units and `log|det| = sum(s * transformed)`. With a checkerboard mask, `t`,
        `s` and `transformed` have the shape of `x`; with a channel mask they cover the
        moving half of the channels only, and `transformed` is all ones.

        Example:

        >>> import numpy as np
        >>> layer = AffineCoupling("checkerboard", filters=4, num_blocks=1)
        >>> x = np.random.randn(2, 4, 4, 3).astype("float32")
        >>> shift, log_scale, transformed = layer.shift_and_log_scale(x)
        >>> tuple(log_scale.shape), float(ops.convert_to_numpy(ops.sum(transformed)))  # half of 2 * 4 * 4 * 3
        ((2, 4, 4, 3), 48.0)
        >>> _, log_det = layer(x)
        >>> total = ops.convert_to_numpy(ops.sum(log_scale * transformed, axis=(1, 2, 3)))
        >>> bool(np.allclose(total, ops.convert_to_numpy(log_det)))
        True
        """
        x = ops.convert_to_tensor(x, dtype=self.compute_dtype)
        if not self.built:
            self.build(tuple(x.shape))
        if labels is not None:
            labels = ops.convert_to_tensor(labels, dtype=self.compute_dtype)
        shift, log_scale, transformed, _ = self._terms(x, labels, training)
        if transformed is None:
            return shift, log_scale, ops.ones_like(log_scale)
        return shift, log_scale, ops.broadcast_to(transformed, ops.shape(log_scale))

    def call(self, x, labels=None, training=False):
        shift, log_scale, transformed, halves = self._terms(x, labels, training)
        if halves is not None:
            kept, moving = halves
            y = merge_channel_halves(kept, moving * ops.exp(log_scale) + shift, self.reverse)
            return y, sum_per_example(log_scale)
        log_scale = log_scale * transformed
        y = x * ops.exp(log_scale) + shift * transformed
        return y, sum_per_example(log_scale)

    def inverse(self, y, labels=None):
        shift, log_scale, transformed, halves = self._terms(y, labels, False)
        if halves is not None:
            kept, moving = halves
            return merge_channel_halves(kept, (moving - shift) * ops.exp(-log_scale), self.reverse)
        log_scale = log_scale * transformed
        return (y - shift * transformed) * ops.exp(-log_scale)

    def compute_output_shape(self, input_shape):
        return input_shape, (input_shape[0],)

    def get_config(self):
        return {
            **super().get_config(),
            "mask_type": self.mask_type,
            "reverse": self.reverse,
            "filters": self.filters,
            "num_blocks": self.num_blocks,
            "label_dim": self.label_dim,
            "bn_momentum": self.bn_momentum,
            "network_dtype": None
            if self.network_dtype is None
            else keras.dtype_policies.serialize(self.network_dtype),
        }

    # Config keys written under an older name, `{old: new}` (keras_realnvp.config_migration).
    renamed_config_keys = LABEL_DIM_RENAMES

    @classmethod
    def from_config(cls, config):
        """The layer a config describes; a config written before a rename (`condition_dim`) loads too.

        Example:

        >>> AffineCoupling.from_config({"mask_type": "channel", "condition_dim": 2}).label_dim
        2
        """
        return super().from_config(rename_old_keys(config, cls.renamed_config_keys))
