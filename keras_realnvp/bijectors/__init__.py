"""Bijective layers: each has its forward map, inverse and log-determinant together."""

from keras_realnvp.bijectors.affine_coupling import AffineCoupling
from keras_realnvp.bijectors.bijector import Bijector
from keras_realnvp.bijectors.chain import BijectorChain
from keras_realnvp.bijectors.dequantize import UniformDequantization
from keras_realnvp.bijectors.factor_out import FactorOut
from keras_realnvp.bijectors.logit import Logit
from keras_realnvp.bijectors.masks import channel_halves, checkerboard_mask, merge_channel_halves
from keras_realnvp.bijectors.running_batch_norm import RunningBatchNorm
from keras_realnvp.bijectors.squeeze import Squeeze

__all__ = [
    "AffineCoupling",
    "Bijector",
    "BijectorChain",
    "FactorOut",
    "Logit",
    "RunningBatchNorm",
    "Squeeze",
    "UniformDequantization",
    "channel_halves",
    "checkerboard_mask",
    "merge_channel_halves",
]
