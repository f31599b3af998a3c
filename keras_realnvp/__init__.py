"""keras_realnvp: Real NVP (Dinh, Sohl-Dickstein, Bengio, ICLR 2017) for Keras 3.

Runs on TensorFlow, JAX and PyTorch: the layers use only `keras.ops` and `keras.random`.

Example:

>>> import numpy as np
>>> import keras_realnvp
>>> model = keras_realnvp.RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=8, num_blocks=1)
>>> tuple(model.bits_per_dim(np.full((2, 8, 8, 3), 128.5, "float32")).shape)
(2,)
"""

# First: XLA reads its CPU flags when JAX first computes (see configure_xla_cpu).
from keras_realnvp.backend.compiled import configure_xla_cpu
from keras_realnvp.backend.vector_math import initialize_vector_math

configure_xla_cpu()
initialize_vector_math()

from keras_realnvp import bijectors, data, evaluation, layers, networks, visualization  # noqa: E402
from keras_realnvp.layers import FactorOut, UniformDequantization  # noqa: E402
from keras_realnvp.models import Flow, RealNVP  # noqa: E402
from keras_realnvp.version import __version__  # noqa: E402

__all__ = [
    "FactorOut",
    "Flow",
    "RealNVP",
    "UniformDequantization",
    "__version__",
    "bijectors",
    "data",
    "evaluation",
    "layers",
    "networks",
    "visualization",
]

# The paper's experiments and the 2-D toy of figure 1 (they import the models above).
from keras_realnvp import experiments  # noqa: E402
from keras_realnvp.models.toy2d import RealNVP2D  # noqa: E402

__all__ += ["RealNVP2D", "experiments"]

# Registered with Keras, so a training checkpoint (which names its optimizer) loads after `import keras_realnvp`.
from keras_realnvp.training.optimizer import GlobalBatchAdam  # noqa: E402

__all__ += ["GlobalBatchAdam"]
