"""A weight-normalized 2-D convolution (Salimans and Kingma, 2016), as used in §3.7."""

import keras

from keras_realnvp.backend.fused_conv import reference_conv2d
from keras_realnvp.backend.weight_norm import weight_normalized_kernel


@keras.saving.register_keras_serializable(package="keras_realnvp")
class WeightNormConv2D(keras.layers.Layer):
    """`conv(x, g * v / ||v||) + b`: the direction `v` and the magnitude `g` are separate.

    Keras has no weight-normalized convolution. The norm of `v` is taken per output
    channel over the kernel's spatial and input axes, so `g` is exactly the norm of
    each output filter. `g` is the "weight-scale parameter" that the paper's L2
    penalty applies to (see `RealNVP.weight_scale_variables`).

    Args:
        filters: output channels.
        kernel_size: side of the square kernel.
        scale_initializer: initializer of `g` (`"ones"`; `"zeros"` starts the
            layer's output at its bias).

    Example:

    >>> import numpy as np
    >>> conv = WeightNormConv2D(8, 3)
    >>> y = conv(np.random.rand(2, 5, 5, 3).astype("float32"))
    >>> tuple(y.shape)
    (2, 5, 5, 8)
    >>> kernel = keras.ops.convert_to_numpy(conv.effective_kernel())
    >>> norms = np.linalg.norm(kernel.reshape(-1, 8), axis=0)
    >>> np.allclose(norms, 1.0, atol=1e-5)
    True
    """

    def __init__(self, filters, kernel_size, scale_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.scale_initializer = keras.initializers.get(scale_initializer)

    def build(self, input_shape):
        k = self.kernel_size
        self.direction = self.add_weight(
            shape=(k, k, input_shape[-1], self.filters),
            initializer=keras.initializers.RandomNormal(stddev=0.05),
            name="direction",
        )
        self.scale = self.add_weight(shape=(self.filters,), initializer=self.scale_initializer, name="scale")
        self.bias = self.add_weight(shape=(self.filters,), initializer="zeros", name="bias")

    def effective_kernel(self):
        """The kernel actually applied, `g * v / ||v||` (`keras_realnvp.backend.weight_norm`)."""
        return weight_normalized_kernel(self.direction, self.scale)  # read (and autocast) there

    def convolve(self, x, kernel=None):
        """`x` convolved with `kernel` (default: `effective_kernel()`), without the bias.

        The call without the layer's `__call__` machinery, for a caller that runs inside an
        enclosing layer's call with the same dtype policy (`CouplingResNet`), where it saves
        that fixed cost per convolution on an eagerly run backend.
        """
        kernel = self.effective_kernel() if kernel is None else kernel
        return reference_conv2d(x, kernel)  # in the layout of `conv_data_format`, no copies

    def call(self, x):
        return self.convolve(x) + self.bias

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "scale_initializer": keras.initializers.serialize(self.scale_initializer),
        }
