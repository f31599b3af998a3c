"""Property-based tests of the public API: every input works and round-trips, or is refused.

Over dtypes, batch sizes (1 included), spatial sizes and value ranges, each of
`log_prob`, `bits_per_dim`, `encode`, `decode` and `sample` either gives finite results
(with `decode(encode(x))` within 1e-3 pixel levels of `x`) or raises a `ValueError`
whose message names the problem. The models are tiny, built once per module with
weights moved away from their initial values, and the batch shapes come from a small
set so that the compiled functions (one per input shape) are reused; dtypes and values
vary freely.
"""

import math

import numpy as np
import pytest
from helpers import randomize_weights, to_numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_realnvp import RealNVP
from keras_realnvp.bijectors import AffineCoupling, BijectorChain, Logit, RunningBatchNorm, Squeeze

ROUND_TRIP_TOLERANCE = 1e-3  # pixel levels, float32
SETTINGS = settings(
    max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
INTEGER_DTYPES = ("uint8", "int16", "uint16", "int32", "int64")
FLOAT_DTYPES = ("float16", "float32", "float64")


@pytest.fixture(scope="module")
def rgb_model():
    model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1, seed=0)
    randomize_weights(model, seed=1)
    return model


@pytest.fixture(scope="module")
def gray_model():
    model = RealNVP(image_shape=(8, 8, 1), num_scales=3, filters=4, num_blocks=1, seed=0)
    randomize_weights(model, seed=2)
    return model


# (batch, height, width): batch 1 and non-square sizes, a few shapes (one compilation each).
RGB_SHAPES = ((1, 8, 8), (3, 8, 8), (2, 4, 12))
GRAY_SHAPES = ((1, 8, 8), (2, 16, 8))


@st.composite
def valid_images(draw, channels, shapes):
    """A batch the model accepts: one of `shapes`, any real dtype, values in range (edges too)."""
    batch, height, width = draw(st.sampled_from(shapes))
    dtype = draw(st.sampled_from(INTEGER_DTYPES + FLOAT_DTYPES))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    shape = (batch, height, width, channels)
    edge = draw(st.sampled_from(("random", "zeros", "top")))
    if np.issubdtype(np.dtype(dtype), np.integer):
        values = {"random": rng.integers(0, 256, shape), "zeros": np.zeros(shape), "top": np.full(shape, 255)}[edge]
    else:
        top = float(np.nextafter(np.array(256, dtype), np.array(0, dtype)))  # the largest value below 256
        values = {"random": rng.uniform(0, 256, shape), "zeros": np.zeros(shape), "top": np.full(shape, top)}[edge]
    return values.astype(dtype)


def _check_round_trip(model, x):
    log_prob = to_numpy(model.log_prob(x))
    assert log_prob.shape == (x.shape[0],) and np.all(np.isfinite(log_prob))
    bits = to_numpy(model.bits_per_dim(x))
    dims = math.prod(x.shape[1:])
    np.testing.assert_allclose(bits, -log_prob / (dims * math.log(2.0)), rtol=1e-5)
    latents = model.encode(x)
    assert [tuple(z.shape[1:]) for z in latents] == model.latent_shapes(x.shape[1:])
    assert all(np.all(np.isfinite(to_numpy(z))) for z in latents)
    back = to_numpy(model.decode(latents))
    assert back.shape == x.shape
    # float32 is what the model computes in: compare with the input as it arrived there.
    error = np.abs(back.astype("float64") - x.astype("float32").astype("float64")).max()
    assert error <= ROUND_TRIP_TOLERANCE, f"round trip off by {error} pixel levels"


@SETTINGS
@given(x=valid_images(3, RGB_SHAPES))
def test_valid_rgb_images_round_trip(rgb_model, x):
    _check_round_trip(rgb_model, x)


@SETTINGS
@given(x=valid_images(1, GRAY_SHAPES))
def test_valid_gray_images_round_trip(gray_model, x):
    _check_round_trip(gray_model, x)


def test_python_lists_and_uint8_edges_work(rgb_model):
    x = np.zeros((1, 8, 8, 3), "uint8")
    x[0, ::2] = 255
    _check_round_trip(rgb_model, x)
    as_list = x.tolist()
    np.testing.assert_allclose(to_numpy(rgb_model.log_prob(as_list)), to_numpy(rgb_model.log_prob(x)), rtol=1e-6)


BAD_VALUES = {
    "negative": (lambda dtype: -1, "must lie in \\[0, 256\\)"),
    "256": (lambda dtype: 256, "must lie in \\[0, 256\\)"),
    "huge": (lambda dtype: 1e6 if dtype.startswith("float") else 2**20, "must lie in \\[0, 256\\)"),
    "nan": (lambda dtype: np.nan, "NaN or infinite"),
    "inf": (lambda dtype: np.inf, "NaN or infinite"),
    "minus_inf": (lambda dtype: -np.inf, "NaN or infinite"),
}


@SETTINGS
@given(
    kind=st.sampled_from(sorted(BAD_VALUES)),
    dtype=st.sampled_from(("int32", "int64", "float16", "float32", "float64")),
    batch=st.integers(1, 3),
    position=st.integers(0, 10**6),
    method=st.sampled_from(("log_prob", "bits_per_dim", "encode")),
)
def test_out_of_range_values_are_refused_by_name(rgb_model, kind, dtype, batch, position, method):
    make, message = BAD_VALUES[kind]
    value = make(dtype)
    if dtype.startswith("int") and not np.isfinite(value):
        return  # integers cannot hold NaN or inf
    if dtype == "float16" and kind == "huge":
        value = 60000.0  # within float16
    x = np.full((batch, 8, 8, 3), 100, dtype)
    x.reshape(-1)[position % x.size] = value
    with pytest.raises(ValueError, match=message):
        getattr(rgb_model, method)(x)


BAD_SHAPES = {
    (8, 8, 3): None,
    (2, 8, 8): "rank 4",
    (2, 8, 8, 3, 1): "rank 4",
    (0, 8, 8, 3): "empty batch",
    (2, 8, 8, 1): "1 channels but the model was built for 3",
    (2, 8, 8, 4): "4 channels but the model was built for 3",
    (2, 7, 8, 3): "height 7 is not divisible by 2",
    (2, 8, 9, 3): "width 9 is not divisible by 2",
    (2, 2, 8, 3): "height 2 is smaller than this model allows \\(4\\)",
    (2, 0, 0, 3): "height 0 is smaller",
}


@SETTINGS
@given(shape=st.sampled_from(sorted(BAD_SHAPES, key=str)), dtype=st.sampled_from(("uint8", "float32")))
def test_wrong_shapes_are_refused_by_name(rgb_model, shape, dtype):
    message = BAD_SHAPES[shape] or "rank 4"
    for method in ("log_prob", "bits_per_dim", "encode"):
        with pytest.raises(ValueError, match=message):
            getattr(rgb_model, method)(np.zeros(shape, dtype))


@pytest.mark.parametrize(
    "value, message",
    [
        (np.ones((1, 8, 8, 3), bool), "integer or floating dtype, got bool"),
        (np.ones((1, 8, 8, 3), "complex64"), "integer or floating dtype"),
        (np.full((1, 8, 8, 3), "a"), "integer or floating dtype"),
        (None, "integer or floating dtype"),
        ({"images": 1}, "integer or floating dtype"),
        ([[1, 2], [3]], "must be a numeric array"),
        (5.0, "rank 4"),
    ],
)
def test_non_numeric_inputs_are_refused_by_name(rgb_model, value, message):
    with pytest.raises(ValueError, match=message):
        rgb_model.log_prob(value)


@SETTINGS
@given(
    shape=st.sampled_from(RGB_SHAPES),
    scale=st.sampled_from((0.0, 1.0, 10.0, 1e3)),
    dtype=st.sampled_from(("float16", "float32", "float64", "int32")),
    seed=st.integers(0, 1000),
)
def test_decode_of_any_finite_latents_is_finite(rgb_model, shape, scale, dtype, seed):
    batch, height, width = shape
    rng = np.random.default_rng(seed)
    latents = [(scale * rng.standard_normal((batch, *s))).astype(dtype)
               for s in rgb_model.latent_shapes((height, width, 3))]
    x = to_numpy(rgb_model.decode(latents))
    assert x.shape == (batch, height, width, 3) and np.all(np.isfinite(x))
    # The logit's full preimage: (sigmoid - alpha) * 256 / (1 - 2 alpha) for sigmoid in [0, 1].
    bound = 256 * rgb_model.alpha / (1 - 2 * rgb_model.alpha) + 1e-3
    assert x.min() >= -bound and x.max() <= 256 + bound


@pytest.mark.parametrize(
    "latents, message",
    [
        (lambda m: [np.full((1, 4, 4, 6), np.nan, "float32"), np.zeros((1, 4, 4, 6), "float32")], "NaN or infinite"),
        (lambda m: [np.zeros((1, 4, 4, 6), bool), np.zeros((1, 4, 4, 6), bool)], "integer or floating dtype"),
        (lambda m: [np.zeros((1, 4, 4, 6))], "list of 2 tensors"),
        (lambda m: [np.zeros((4, 4, 6)), np.zeros((4, 4, 6))], "rank 4"),
        (lambda m: [np.zeros((1, 4, 4, 6)), np.zeros((2, 4, 4, 6))], "latents\\[1\\] has shape"),
    ],
)
def test_bad_latents_are_refused_by_name(rgb_model, latents, message):
    with pytest.raises(ValueError, match=message):
        rgb_model.decode(latents(rgb_model))


@SETTINGS
@given(
    shape=st.sampled_from(RGB_SHAPES),
    temperature=st.sampled_from((0.0, 0.5, 1.0, 3.0, 10.0, 100.0)),
    seed=st.integers(0, 1000),
)
def test_samples_are_finite_at_any_temperature(rgb_model, shape, temperature, seed):
    num, height, width = shape
    x = to_numpy(rgb_model.sample(num, temperature=temperature, seed=seed, image_shape=(height, width, 3)))
    assert x.shape == (num, height, width, 3) and np.all(np.isfinite(x))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_samples": 0}, "num_samples"),
        ({"num_samples": 1, "temperature": -1.0}, "temperature"),
        ({"num_samples": 1, "temperature": float("inf")}, "temperature"),
        ({"num_samples": 1, "image_shape": (8, 8, 1)}, "channels"),
        ({"num_samples": 1, "image_shape": (6, 7, 3)}, "multiple of 2"),
    ],
)
def test_bad_sampling_arguments_are_refused_by_name(rgb_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        rgb_model.sample(**kwargs)


# ------------------------------------------------------------ bijector layers


@pytest.fixture(scope="module")
def layers():
    logit = Logit(0.05)
    checkerboard = BijectorChain([AffineCoupling("checkerboard", filters=4, num_blocks=1), RunningBatchNorm()])
    channel = AffineCoupling("channel", reverse=True, filters=4, num_blocks=1)
    squeeze = Squeeze()
    for layer, channels in ((checkerboard, 2), (channel, 4)):
        layer.build((None, 4, 4, channels))
        randomize_weights(layer, seed=channels)
    return {"logit": logit, "checkerboard": checkerboard, "channel": channel, "squeeze": squeeze}


@SETTINGS
@given(
    name=st.sampled_from(("logit", "checkerboard", "channel", "squeeze")),
    batch=st.integers(1, 3),
    size=st.sampled_from((2, 4, 6)),
    seed=st.integers(0, 1000),
)
def test_bijector_layers_round_trip_with_a_log_det_per_example(layers, name, batch, size, seed):
    layer = layers[name]
    channels = {"logit": 3, "checkerboard": 2, "channel": 4, "squeeze": 1}[name]
    rng = np.random.default_rng(seed)
    shape = (batch, size, size, channels)
    x = (rng.uniform(0, 256, shape) if name == "logit" else rng.normal(0, 2, shape)).astype("float32")
    y, log_det = layer(x)
    assert to_numpy(log_det).shape == (batch,) and np.all(np.isfinite(to_numpy(log_det)))
    back = to_numpy(layer.inverse(y))
    tolerance = 1e-3 if name == "logit" else 1e-4
    np.testing.assert_allclose(back, x, atol=tolerance)
