"""FLOP counts read off the layers: the figure the benchmark's GFLOP/s are based on."""

import keras

from keras_realnvp import RealNVP
from keras_realnvp.bijectors import AffineCoupling, BijectorChain
from keras_realnvp.flops import TRAINING_FLOPS_PER_FORWARD, chain_flops, forward_flops, layer_flops
from keras_realnvp.networks import WeightNormConv2D


def _coupling_macs_per_position(net_in, filters, blocks, net_out):
    """Multiply-adds per pixel of one CouplingResNet, from the architecture (docs/paper.md §2)."""
    stem = 9 * net_in * filters
    residual = blocks * 2 * 9 * filters * filters
    skips = (blocks + 1) * filters * filters
    head = filters * net_out
    return stem + residual + skips + head


def test_cifar10_forward_is_about_12_9_gflop_per_image():
    model = RealNVP(image_shape=(32, 32, 3), num_scales=2, filters=64, num_blocks=8)
    flops = forward_flops(model)
    # Independent count: 3 checkerboard couplings at 32x32 (3 channels + mask in, 64 maps),
    # 3 channel couplings at 16x16 (6 of 12 channels in, 128 maps), 4 checkerboard
    # couplings at 16x16 (6 channels + mask in, 128 maps).
    macs = (
        3 * 32 * 32 * _coupling_macs_per_position(4, 64, 8, 6)
        + 3 * 16 * 16 * _coupling_macs_per_position(6, 128, 8, 12)
        + 4 * 16 * 16 * _coupling_macs_per_position(7, 128, 8, 12)
    )
    assert flops == 2 * macs
    # docs/paper.md §7: "about 12.9 GFLOP per image (about 6.4 G multiply-adds)".
    assert abs(flops / 1e9 - 12.9) < 0.05, flops
    assert TRAINING_FLOPS_PER_FORWARD == 3


def test_count_scales_with_the_image_area_and_follows_the_preset():
    model = RealNVP(image_shape=(16, 16, 3), num_scales=3, filters=8, num_blocks=2)
    assert forward_flops(model, (32, 48, 3)) == 6 * forward_flops(model)
    deeper = RealNVP(image_shape=(16, 16, 3), num_scales=3, filters=8, num_blocks=3)
    assert forward_flops(deeper) > forward_flops(model)


def test_layer_flops_of_convolutions_and_dense_layers():
    conv = WeightNormConv2D(5, 3)
    conv.build((None, 4, 4, 2))
    assert layer_flops(conv, positions=16) == 2 * 9 * 2 * 5 * 16
    plain = keras.layers.Conv2D(5, 1)
    plain.build((None, 4, 4, 2))
    assert layer_flops(plain, positions=16) == 2 * 2 * 5 * 16
    dense = keras.layers.Dense(7)
    dense.build((None, 3))
    assert layer_flops(dense, positions=16) == 2 * 3 * 7  # once per example
    assert layer_flops(keras.layers.ReLU(), positions=16) == 0


def test_vector_couplings_count_their_dense_layers():
    chain = BijectorChain([AffineCoupling("checkerboard", filters=16, num_blocks=1)])
    chain.build((None, 2))
    # CouplingMLP: 2 -> 16 -> 16 -> 4, once per example.
    assert chain_flops(chain, (2,)) == 2 * (2 * 16 + 16 * 16 + 16 * 4)
