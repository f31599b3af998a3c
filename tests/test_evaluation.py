"""Held-out bits/dim: batched, compiled, and equal to the model's own bits_per_dim."""

import math

import numpy as np
import pytest

from keras_realnvp import RealNVP
from keras_realnvp.data import dequantize_numpy
from keras_realnvp.evaluation import held_out_bits_per_dim


@pytest.fixture(scope="module")
def model():
    return RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1, seed=0)


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(0).integers(0, 256, (7, 8, 8, 3), dtype=np.uint8)


def _reference_bits(model, pixels, seed, draw):
    return np.asarray(model.bits_per_dim(dequantize_numpy(pixels, (seed, draw))), np.float64)


def test_matches_the_models_bits_per_dim_for_any_batch_size(model, pixels):
    per_image = (_reference_bits(model, pixels, 3, 0) + _reference_bits(model, pixels, 3, 1)) / 2
    # 3 pads the last of three batches; 256 puts all seven images in one batch.
    for batch_size in (3, 256):
        mean, standard_error = held_out_bits_per_dim(model, pixels, num_draws=2, seed=3, batch_size=batch_size)
        # float32 forward passes, compiled (predict) against eager (bits_per_dim).
        assert mean == pytest.approx(per_image.mean(), abs=1e-4)
        assert standard_error == pytest.approx(per_image.std(ddof=1) / math.sqrt(len(pixels)), rel=1e-3)


def test_single_image_has_no_standard_error(model, pixels):
    mean, standard_error = held_out_bits_per_dim(model, pixels[:1])
    assert math.isfinite(mean) and math.isnan(standard_error)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_draws": 0}, "num_draws must be a positive integer"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"pixels": np.zeros((2, 8, 8, 1), np.uint8)}, "channels"),
        ({"pixels": np.zeros((2, 5, 8, 3), np.uint8)}, "height 5 is not divisible"),
        ({"pixels": np.full((2, 8, 8, 3), 0.5, np.float32)}, "must be integers"),
    ],
)
def test_bad_arguments_are_rejected(model, pixels, kwargs, match):
    kwargs = {"pixels": pixels, **kwargs}
    with pytest.raises(ValueError, match=match):
        held_out_bits_per_dim(model, **kwargs)
