"""The model's layers that are not bijectors: dequantization and factoring out.

`UniformDequantization` adds noise (not a bijection, not part of the density) and
`FactorOut` splits the units into a latent and the rest (two outputs, no log-determinant):
neither has the `Bijector` interface of `keras_realnvp.bijectors`. Their Keras registered
names (`keras_realnvp>UniformDequantization`, `keras_realnvp>FactorOut`) are unchanged
from when they lived in `keras_realnvp.bijectors`.

Example:

>>> import numpy as np
>>> from keras_realnvp.layers import FactorOut
>>> z, rest = FactorOut()(np.zeros((1, 2, 2, 4), "float32"))
>>> tuple(z.shape), tuple(rest.shape)
((1, 2, 2, 2), (1, 2, 2, 2))
"""

from keras_realnvp.layers.dequantize import UniformDequantization
from keras_realnvp.layers.factor_out import FactorOut

__all__ = ["FactorOut", "UniformDequantization"]
