"""Type aliases of the public API: what the models take and return.

`Tensor` is a tensor of the backend in use (a `torch.Tensor`, `jax.Array` or
`tf.Tensor`), which `keras.ops` accepts and returns; `ArrayLike` is anything
`keras.ops.convert_to_tensor` accepts (NumPy arrays, nested lists, tensors);
`Shape` an image shape `(height, width, channels)`.

Example:

>>> from keras_realnvp.tensor_types import ArrayLike, Shape, Tensor
>>> shape: Shape = (32, 32, 3)
>>> shape
(32, 32, 3)
"""

from typing import Any

import numpy as np

Tensor = Any  # the backend's tensor type; Keras 3 has no common static type for it
ArrayLike = np.ndarray | Tensor | list | tuple | float | int
Shape = tuple[int, ...]
Seed = int | None | Any  # an int, None (unseeded) or a keras.random.SeedGenerator
