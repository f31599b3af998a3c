"""Every bijective layer passes the same checks: inverse, exact log-det, serialization.

Tolerances: float64 layers; inverse to 1e-9; log-det against `slogdet` of the full
Jacobian computed by the backend's automatic differentiation (`helpers.brute_force_log_det`)
to 1e-5 absolute.
"""

import numpy as np
import pytest
from helpers import check_inverse, check_log_det, check_serialization, randomize_weights, to_numpy

from keras_realnvp.bijectors import (
    AffineCoupling,
    BijectorChain,
    Logit,
    RunningBatchNorm,
    Squeeze,
    checkerboard_mask,
)
from keras_realnvp.layers import FactorOut


def _layers():
    kw = {"dtype": "float64"}
    return {
        "logit": (lambda: Logit(0.05, **kw), (2, 4, 4, 2), "pixels"),
        "squeeze": (lambda: Squeeze(**kw), (2, 4, 4, 2), "reals"),
        "batch_norm": (lambda: RunningBatchNorm(center=True, scale=True, **kw), (2, 4, 4, 3), "reals"),
        "batch_norm_batch_mode": (
            lambda: RunningBatchNorm(center=True, scale=True, mode="batch", **kw), (2, 4, 4, 3), "reals"
        ),
        "checkerboard": (lambda: AffineCoupling("checkerboard", False, 8, 2, **kw), (2, 4, 4, 2), "reals"),
        "checkerboard_reverse": (lambda: AffineCoupling("checkerboard", True, 8, 2, **kw), (2, 4, 4, 2), "reals"),
        "channel": (lambda: AffineCoupling("channel", False, 8, 2, **kw), (2, 2, 2, 6), "reals"),
        "channel_reverse": (lambda: AffineCoupling("channel", True, 8, 2, **kw), (2, 2, 2, 6), "reals"),
        "chain": (
            lambda: BijectorChain(
                [Logit(**kw), AffineCoupling("checkerboard", False, 4, 1, **kw), RunningBatchNorm(**kw), Squeeze(**kw),
                 AffineCoupling("channel", True, 4, 1, **kw)],
                **kw,
            ),
            (2, 4, 4, 2),
            "pixels",
        ),
        # Vectors (batch, features): the 2-D toy's couplings, with an MLP as the s/t network.
        "vector_checkerboard": (lambda: AffineCoupling("checkerboard", False, 8, 1, **kw), (3, 5), "reals"),
        "vector_checkerboard_reverse": (lambda: AffineCoupling("checkerboard", True, 8, 1, **kw), (3, 2), "reals"),
        "vector_channel": (lambda: AffineCoupling("channel", False, 8, 1, **kw), (3, 4), "reals"),
        "vector_channel_reverse": (lambda: AffineCoupling("channel", True, 8, 2, **kw), (3, 6), "reals"),
        "vector_chain": (
            lambda: BijectorChain(
                [AffineCoupling("checkerboard", False, 8, 1, **kw), RunningBatchNorm(**kw),
                 AffineCoupling("checkerboard", True, 8, 1, **kw)],
                **kw,
            ),
            (3, 2),
            "reals",
        ),
    }


def _input(kind, shape, rng):
    if kind == "pixels":
        return rng.uniform(0.5, 255.5, shape)
    return rng.normal(0.0, 1.0, shape)


def _built_randomized(name, seed=0):
    factory, shape, kind = _layers()[name]
    layer = factory()
    layer.build(shape)
    randomize_weights(layer, seed=seed)
    return layer, shape, kind


@pytest.mark.parametrize("name", sorted(_layers()))
def test_inverse_round_trip(name, rng):
    layer, shape, kind = _built_randomized(name)
    check_inverse(lambda x: layer(x)[0], layer.inverse, _input(kind, shape, rng), atol=1e-9)


@pytest.mark.parametrize("name", sorted(_layers()))
def test_log_det_matches_brute_force_jacobian(name, rng):
    layer, shape, kind = _built_randomized(name)
    check_log_det(layer, _input(kind, shape, rng), atol=1e-5)


@pytest.mark.parametrize("name", sorted(_layers()))
def test_serialization_round_trip(name, rng):
    layer, shape, kind = _built_randomized(name)
    check_serialization(layer, _input(kind, shape, rng), build_shape=shape)


def test_couplings_start_at_identity_in_s_and_keep_masked_units(rng):
    x = rng.normal(size=(2, 4, 4, 2)).astype("float32")
    layer = AffineCoupling("checkerboard", filters=8, num_blocks=1)
    y, log_det = layer(x)
    # A fresh coupling has scale 0: s = 0, so the log-det is exactly 0 and only t acts.
    np.testing.assert_array_equal(to_numpy(log_det), np.zeros(2))
    mask = to_numpy(checkerboard_mask(4, 4))
    np.testing.assert_array_equal(to_numpy(y) * mask, x * mask)
    assert np.abs((to_numpy(y) - x) * (1 - mask)).max() > 0


@pytest.mark.parametrize(
    "mask_type,reverse,kept",
    [("checkerboard", False, [1, 3]), ("checkerboard", True, [0, 2, 4]), ("channel", False, [0, 1]),
     ("channel", True, [2, 3])],
)
def test_vector_couplings_keep_the_masked_features(mask_type, reverse, kept, rng):
    size = 4 if mask_type == "channel" else 5
    layer = AffineCoupling(mask_type, reverse, filters=8, num_blocks=1)
    layer.build((3, size))
    randomize_weights(layer, seed=4)
    x = rng.normal(size=(3, size)).astype("float32")
    y, log_det = layer(x)
    y = to_numpy(y)
    moved = [i for i in range(size) if i not in kept]
    np.testing.assert_array_equal(y[:, kept], x[:, kept])
    assert np.abs(y[:, moved] - x[:, moved]).min() > 0
    assert np.abs(to_numpy(log_det)).min() > 0  # randomized scales: a real volume change
    assert type(layer.net).__name__ == "CouplingMLP"


def test_coupling_rejects_rank_3_input():
    with pytest.raises(ValueError, match="images .* or vectors"):
        AffineCoupling("checkerboard", filters=4, num_blocks=1).build((2, 4, 3))


def test_checkerboard_mask_is_odd_parity_and_complement():
    mask = to_numpy(checkerboard_mask(3, 4))[..., 0]
    rows, cols = np.indices((3, 4))
    np.testing.assert_array_equal(mask, (rows + cols) % 2)
    np.testing.assert_array_equal(to_numpy(checkerboard_mask(3, 4, reverse=True))[..., 0], 1 - (rows + cols) % 2)


def test_channel_mask_after_squeeze_is_not_the_checkerboard_partition():
    # Label each pixel by its checkerboard colour; squeeze; the first half of the
    # channels (what a channel mask keeps) must hold both colours.
    colour = to_numpy(checkerboard_mask(4, 4))[None]
    squeezed, _ = Squeeze()(colour)
    first_half = to_numpy(squeezed)[..., :2]
    assert set(np.unique(first_half)) == {0.0, 1.0}


def test_squeeze_layout_and_factor_out_split(rng):
    x = rng.normal(size=(2, 4, 6, 3)).astype("float32")
    y, _ = Squeeze()(x)
    y = to_numpy(y)
    assert y.shape == (2, 2, 3, 12)
    for di in range(2):
        for dj in range(2):
            k = 2 * di + dj
            np.testing.assert_array_equal(y[..., 3 * k : 3 * k + 3], x[:, di::2, dj::2, :])
    z, rest = FactorOut()(y)
    np.testing.assert_array_equal(to_numpy(z), y[..., :6])
    np.testing.assert_array_equal(to_numpy(FactorOut().merge(z, rest)), y)


def test_logit_analytic_values():
    x = np.array([[0.0, 64.0, 128.0, 255.9]])
    y, log_det = Logit(0.05, dtype="float64")(x)
    p = 0.05 + 0.9 * x / 256.0
    np.testing.assert_allclose(to_numpy(y), np.log(p / (1 - p)), rtol=1e-12)
    expected = np.sum(np.log(0.9 / 256.0) - np.log(p) - np.log1p(-p))
    np.testing.assert_allclose(to_numpy(log_det), [expected], rtol=1e-12)


def test_logit_rejects_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        Logit(alpha=0.5)


def test_coupling_rejects_unknown_mask():
    with pytest.raises(ValueError, match="mask_type"):
        AffineCoupling("diagonal")


@pytest.mark.parametrize("shape", [(1, 3, 4, 2), (1, 4, 5, 2), (4, 4, 2)])
def test_squeeze_refuses_odd_sizes_and_wrong_rank(shape):
    with pytest.raises(ValueError, match="Squeeze"):
        Squeeze()(np.zeros(shape, "float32"))


def test_squeeze_inverse_refuses_channels_not_divisible_by_four():
    with pytest.raises(ValueError, match="4C"):
        Squeeze().inverse(np.zeros((1, 2, 2, 6), "float32"))
