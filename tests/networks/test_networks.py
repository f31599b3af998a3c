"""The s/t networks and the weight-normalized convolution: serialization (the bijectors' shared
check, tests/helpers.py), output shapes, and conditioning."""

import numpy as np
import pytest
from helpers import check_serialization, randomize_weights, to_numpy

from keras_realnvp.networks import CouplingResNet, WeightNormConv2D
from keras_realnvp.networks.coupling_mlp import CouplingMLP


def _networks():
    return {
        "resnet": (lambda: CouplingResNet(filters=6, num_blocks=2, output_channels=4, dtype="float64"), (2, 4, 4, 2)),
        "resnet_conditional": (
            lambda: CouplingResNet(filters=6, num_blocks=1, output_channels=4, label_dim=3, dtype="float64"),
            (2, 4, 4, 2),
        ),
        "mlp": (lambda: CouplingMLP(filters=8, num_blocks=2, output_units=4, dtype="float64"), (3, 2)),
        "mlp_conditional": (
            lambda: CouplingMLP(filters=8, num_blocks=1, output_units=4, label_dim=3, dtype="float64"), (3, 2)
        ),
        "weight_norm_conv": (lambda: WeightNormConv2D(5, 3, dtype="float64"), (2, 4, 4, 2)),
    }


def _built(name, rng, seed):
    """The network `name`, built on a random input and given random weights; the input, call kwargs, shape."""
    factory, shape = _networks()[name]
    layer = factory()
    x = rng.normal(size=shape)
    kwargs = {"labels": rng.normal(size=(shape[0], 3))} if name.endswith("conditional") else {}
    layer(x, **kwargs)  # builds it
    randomize_weights(layer, seed=seed)
    return layer, x, kwargs, shape


@pytest.mark.parametrize("name", sorted(_networks()))
def test_serialization_round_trip(name, rng):
    layer, x, kwargs, shape = _built(name, rng, seed=1)
    check_serialization(layer, x, build_shape=shape, **kwargs)


@pytest.mark.parametrize("name", sorted(_networks()))
def test_outputs_have_the_declared_shape_and_depend_on_the_input(name, rng):
    layer, x, kwargs, shape = _built(name, rng, seed=2)
    y = to_numpy(layer(x, **kwargs))
    assert y.shape == tuple(layer.compute_output_shape(shape)), (y.shape, shape)
    assert np.all(np.isfinite(y))
    assert np.abs(y - to_numpy(layer(x + 0.5, **kwargs))).max() > 1e-6  # not a constant


@pytest.mark.parametrize("name", ["resnet_conditional", "mlp_conditional"])
def test_the_labels_change_the_output(name, rng):
    layer, x, _, shape = _built(name, rng, seed=3)
    a = to_numpy(layer(x, labels=np.zeros((shape[0], 3))))
    b = to_numpy(layer(x, labels=np.ones((shape[0], 3))))
    assert np.abs(a - b).max() > 1e-6
