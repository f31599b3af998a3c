"""FLOP counts of a Real NVP, read off its layers: what a benchmark divides by the time.

Only the convolutions and dense layers of the s/t networks are counted, two FLOPs per
multiply-add; the element-wise work (batch norms, ReLUs, the couplings' `exp`, the logit)
adds well under 1% for the paper's architectures and is left out, as is usual for
convolutional networks.
"""

import math

import keras

from keras_realnvp.bijectors import AffineCoupling, BijectorChain
from keras_realnvp.networks import WeightNormConv2D

# A training step runs the forward pass and a backward pass that costs about twice as much
# (one product for the input gradient and one for the weight gradient per layer).
TRAINING_FLOPS_PER_FORWARD = 3


def layer_flops(layer, positions: int) -> int:
    """FLOPs of one example through a convolution or dense layer, `positions` = pixels.

    A `WeightNormConv2D` or `keras.layers.Conv2D` with kernel `(k, k, c_in, c_out)` costs
    `2 k^2 c_in c_out` per output position ("same" padding, stride 1); a `Dense` layer
    `2 d_in d_out` per example, whatever `positions` is (in the s/t networks it only
    projects the label vector, once per example). Other layers count 0.

    Example:

    >>> conv = WeightNormConv2D(8, 3)
    >>> conv.build((None, 4, 4, 2))
    >>> layer_flops(conv, positions=16)  # 2 * 3 * 3 * 2 * 8 * 16
    4608
    """
    if isinstance(layer, WeightNormConv2D):
        return 2 * math.prod(layer.direction.shape) * positions
    if isinstance(layer, keras.layers.Conv2D):
        return 2 * math.prod(layer.kernel.shape) * positions
    if isinstance(layer, keras.layers.Dense):
        return 2 * math.prod(layer.kernel.shape)
    return 0


def _network_flops(net, positions):
    return sum(layer_flops(layer, positions) for layer in net._flatten_layers(include_self=False))


def chain_flops(chain: BijectorChain, input_shape) -> int:
    """FLOPs of one example through a `BijectorChain` whose input has `input_shape`.

    `input_shape` is `(height, width, channels)` for images or `(features,)` for vectors.
    The inverse costs the same: every coupling runs its s/t network once either way.

    Example:

    >>> chain = BijectorChain([AffineCoupling("channel", filters=4, num_blocks=1)])
    >>> chain.build((None, 2, 2, 4))
    >>> # 4 positions x 2 FLOPs x (stem 9*2*4 + 2 skips 4*4 + 2 block convs 9*4*4 + head 4*4)
    >>> chain_flops(chain, (2, 2, 4))
    3264
    """
    positions = math.prod(tuple(input_shape)[:-1])
    total = 0
    for bijector in chain.bijectors:
        if isinstance(bijector, AffineCoupling):
            total += _network_flops(bijector.net, positions)
        elif isinstance(bijector, BijectorChain):
            total += chain_flops(bijector, input_shape)
    return total


def forward_flops(model, image_shape=None) -> int:
    """FLOPs of one image through the flow `f` of a `RealNVP` (sampling's `f^-1` costs the same).

    Read from the model's own layers: every coupling's s/t network at the spatial size
    it runs at. A training step costs about `TRAINING_FLOPS_PER_FORWARD` (3) times this
    per image. For the paper's CIFAR-10 architecture this is 12.88 GFLOP (docs/paper.md §7:
    "about 12.9 GFLOP per image").

    Args:
        model: a `RealNVP`.
        image_shape: `(H, W, C)`; default the model's own `image_shape` (the model is
            fully convolutional, so the count scales with `H * W`).

    Example:

    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1)
    >>> forward_flops(model)
    601600
    >>> forward_flops(model, (16, 16, 3)) == 4 * forward_flops(model)
    True
    """
    total = 0
    for scale in model.scales(image_shape):
        total += chain_flops(scale.checkerboard, scale.shapes.input_shape)
        if not scale.is_last:
            total += chain_flops(scale.channel, scale.shapes.squeezed_shape)
    return total
