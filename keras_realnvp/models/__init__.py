"""Models assembled from the bijective layers."""

from keras_realnvp.models.realnvp import RealNVP

__all__ = ["RealNVP"]
