"""Bijective layers: each has its forward map, inverse and log-determinant together."""

from keras_realnvp.bijectors.affine_coupling import AffineCoupling
from keras_realnvp.bijectors.bijector import Bijector
from keras_realnvp.bijectors.chain import BijectorChain
from keras_realnvp.bijectors.logit import Logit
from keras_realnvp.bijectors.masks import channel_halves, checkerboard_mask, merge_channel_halves
from keras_realnvp.bijectors.running_batch_norm import RunningBatchNorm
from keras_realnvp.bijectors.squeeze import Squeeze

__all__ = [
    "AffineCoupling",
    "Bijector",
    "BijectorChain",
    "Logit",
    "RunningBatchNorm",
    "Squeeze",
    "channel_halves",
    "checkerboard_mask",
    "merge_channel_halves",
]


def __getattr__(name):
    # FactorOut and UniformDequantization moved to keras_realnvp.layers (they are not bijectors);
    # the old import path keeps working.
    if name in ("FactorOut", "UniformDequantization"):
        from keras_realnvp import layers

        return getattr(layers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
