"""The networks inside the couplings."""

from keras_realnvp.networks.coupling_resnet import CouplingResNet
from keras_realnvp.networks.weight_norm_conv import WeightNormConv2D

__all__ = ["CouplingResNet", "WeightNormConv2D"]
