"""Densities you can differentiate: gradients of log_prob, bits_per_dim, encode and decode.

Each backend's own autodiff (`helpers.gradient`: autograd on a torch tensor that requires
grad, `jax.grad`, a `tf.GradientTape` watching the input) against central differences of the
same public method (`helpers.central_differences`), on tiny float64 models whose weights come
from a seed alone (`helpers.seeded_weights`): the same functions on every backend.

Tolerances, on the largest difference relative to the largest gradient entry. Keras 3.15
computes a few float64 operations in float32: `ops.tanh` on JAX (each coupling's
`s = scale * tanh(.)`) and `ops.matmul` on PyTorch (the toy's Dense layers). That leaves about
1e-7 relative round-off in those models' outputs, which central differences divide by the step.

- Image model, PyTorch and TensorFlow (float64 throughout): steps of 0.01 pixel values, 1e-4
  in latent units. Wider steps straddle ReLU kinks of the s/t networks (measured: 1e-2
  relative at 0.05 pixel values); at these steps at most 4e-7 was measured, so 1e-5.
- Image model, JAX: steps of 0.05 pixel values and 1e-3 latent units balance the tanh
  round-off against the kinks: at most 3.5e-4 measured, so 1e-3. (With a float64 tanh, the JAX
  log_prob differences agree as closely as on the other backends: 3e-7 measured.)
- 2-D toy: steps of 1e-4 (its ReLU kinks lie within 1e-3 of the test points). TensorFlow:
  at most 1e-10 measured, so 1e-8. PyTorch and JAX (float32 matmul, tanh): at most 3.7e-4,
  so 1e-3.
"""

import math

import keras
import numpy as np
import pytest
from helpers import central_differences, gradient, seeded_weights, to_numpy
from keras import ops

from keras_realnvp import RealNVP, RealNVP2D

BACKEND = keras.backend.backend()
IMAGE_SHAPE = (4, 4, 2)
# Steps and relative tolerances of the central differences: see the module docstring.
PIXEL_STEP, LATENT_STEP, RTOL = (0.05, 1e-3, 1e-3) if BACKEND == "jax" else (0.01, 1e-4, 1e-5)
TOY_STEP, TOY_RTOL = 1e-4, (1e-8 if BACKEND == "tensorflow" else 1e-3)


@pytest.fixture(scope="module")
def model():
    model = RealNVP(image_shape=IMAGE_SHAPE, num_scales=2, filters=4, num_blocks=1, dtype="float64", seed=0)
    seeded_weights(model, seed=1)
    return model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0.5, 255.5, (2, *IMAGE_SHAPE))


@pytest.fixture(scope="module")
def toy():
    toy = RealNVP2D(dim=2, num_couplings=4, filters=8, num_blocks=1, dtype="float64", seed=0)
    seeded_weights(toy, seed=2)
    return toy


def _assert_close(autodiff, differences, rtol=RTOL):
    assert autodiff.shape == differences.shape
    assert np.all(np.isfinite(autodiff))
    scale = np.abs(autodiff).max()
    assert scale > 1e-3, "no gradient reached the input"
    error = np.abs(autodiff - differences).max()
    assert error <= rtol * scale, f"largest difference {error:.3g}, largest entry {scale:.3g}"


def _weighted_sum(tensors, weights):
    """Per example, `sum_k <weights[k], tensors[k]>`: a scalar function of every output entry."""
    total = 0.0
    for t, w in zip(tensors, weights):
        product = ops.multiply(t, ops.convert_to_tensor(w, dtype=t.dtype))
        total = total + ops.sum(ops.reshape(product, (ops.shape(t)[0], -1)), axis=1)
    return total


@pytest.mark.parametrize("method", ["log_prob", "bits_per_dim"])
def test_density_gradient_matches_central_differences(model, images, method):
    fn = getattr(model, method)
    autodiff = gradient(fn, images)
    _assert_close(autodiff, central_differences(fn, images, PIXEL_STEP))
    if method == "bits_per_dim":
        # The same score as log_prob's, scaled by -1 / (D ln 2): both point the same way.
        dims = math.prod(IMAGE_SHAPE) * math.log(2.0)
        np.testing.assert_allclose(-autodiff * dims, central_differences(model.log_prob, images, PIXEL_STEP),
                                   atol=RTOL * np.abs(autodiff * dims).max())


def test_encode_gradient_matches_central_differences(model, images):
    rng = np.random.default_rng(3)
    weights = [rng.normal(size=shape) for shape in model.latent_shapes()]

    def projection(x):
        return _weighted_sum(model.encode(x), weights)

    _assert_close(gradient(projection, images), central_differences(projection, images, PIXEL_STEP))


def test_decode_gradient_matches_central_differences(model, images):
    shapes = model.latent_shapes()
    sizes = [math.prod(s) for s in shapes]
    flat = np.concatenate([to_numpy(z).reshape(len(images), -1) for z in model.encode(images)], axis=1)
    weights = [np.random.default_rng(4).normal(size=IMAGE_SHAPE)]

    def projection(latents):
        # Latents as one flat vector per example (for the differences), split into the scales.
        bounds = np.cumsum([0, *sizes])
        parts = [ops.reshape(latents[:, a:b], (-1, *s)) for a, b, s in zip(bounds[:-1], bounds[1:], shapes)]
        return _weighted_sum([model.decode(parts)], weights)

    _assert_close(gradient(projection, flat), central_differences(projection, flat, LATENT_STEP))


@pytest.mark.parametrize("method", ["log_prob", "encode", "decode"])
def test_toy_model_gradients_match_central_differences(toy, method):
    points = np.random.default_rng(5).normal(size=(4, 2))
    weights = [np.array([0.7, -1.3])]
    if method == "log_prob":
        fn = toy.log_prob
    else:
        fn = lambda x: _weighted_sum([getattr(toy, method)(x)], weights)  # noqa: E731
    _assert_close(gradient(fn, points), central_differences(fn, points, TOY_STEP), TOY_RTOL)


@pytest.mark.skipif(BACKEND != "torch", reason="JAX and TensorFlow record nothing outside a transformation or tape")
def test_torch_plain_calls_keep_no_graph(model, images, toy):
    """Only an input that requires grad, with autograd on, gets a result with a graph."""
    import torch

    def results(m, x):
        if isinstance(m, RealNVP2D):
            return [m.log_prob(x), m.encode(x), m.decode(x), m.sample(2, seed=0)]
        latents = m.encode(x)
        return [m.log_prob(x), m.bits_per_dim(x), *latents, m.decode(latents), m.sample(2, seed=0)]

    points = np.random.default_rng(6).normal(size=(3, 2))
    for m, x in ((model, images), (toy, points)):
        plain = [x, torch.tensor(x)]  # the parameters require grad, the inputs do not
        for x_plain in plain:
            assert not any(r.requires_grad for r in results(m, x_plain))
        tracked = torch.tensor(x, requires_grad=True)
        with torch.no_grad():
            assert not any(r.requires_grad for r in results(m, tracked))
        assert m.log_prob(tracked).requires_grad and m.encode(tracked)[0].requires_grad
    model.run_eagerly = True  # the eager (debugging) mode follows the same rule
    try:
        assert not model.log_prob(images).requires_grad
        assert model.log_prob(torch.tensor(images, requires_grad=True)).requires_grad
    finally:
        model.run_eagerly = False


@pytest.mark.skipif(BACKEND != "jax", reason="JAX transformations")
def test_jax_jit_grad_and_vmap_trace_through_log_prob(model, images, toy):
    import jax

    # Differently fused programs round the float32 tanh (module docstring) differently, by up to
    # a float32 rounding of a term: 1.4e-8 relative measured (the toy, XLA without its LLVM
    # optimizations, as the tests compile), so 1e-7.
    expected = to_numpy(model.log_prob(images))
    np.testing.assert_allclose(np.asarray(jax.jit(model.log_prob)(images)), expected, rtol=1e-7)
    per_example = jax.vmap(lambda x: model.log_prob(x[None])[0])(images)
    np.testing.assert_allclose(np.asarray(per_example), expected, rtol=1e-7)
    score = np.asarray(jax.jit(jax.grad(lambda x: model.log_prob(x).sum()))(images))
    expected_score = gradient(model.log_prob, images)
    np.testing.assert_allclose(score, expected_score, rtol=0, atol=1e-5 * np.abs(expected_score).max())
    points = np.random.default_rng(7).normal(size=(3, 2))
    np.testing.assert_allclose(np.asarray(jax.jit(toy.log_prob)(points)), to_numpy(toy.log_prob(points)), rtol=1e-7)


@pytest.mark.skipif(BACKEND != "jax", reason="JAX tracers")
def test_jax_value_checks_run_where_values_exist(model, images):
    import jax

    nan = images.copy()
    nan[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):  # under jax.grad the values exist
        jax.grad(lambda x: model.log_prob(x).sum())(nan)
    with pytest.raises(ValueError, match="must lie in"):  # a concrete array inside a caller's jit
        jax.jit(lambda: model.log_prob(images + 300.0))()
    # Inside jax.jit a traced input has no values: the value check is skipped (NaN in, NaN out)...
    result = np.asarray(jax.jit(model.log_prob)(nan))
    assert np.isnan(result[0]) and np.isfinite(result[1])
    # ... while its shape is still checked.
    with pytest.raises(ValueError, match="1 channels but the model was built for 2"):
        jax.jit(model.log_prob)(images[..., :1])


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.function and tf.GradientTape")
def test_tensorflow_function_and_tape(model, images):
    import tensorflow as tf

    x = tf.constant(images)
    np.testing.assert_allclose(tf.function(model.log_prob)(x).numpy(), to_numpy(model.log_prob(images)), rtol=1e-12)
    # Sizes a trace leaves unknown pass the checks; bits_per_dim counts the dimensions at run time.
    unknown = tf.function(model.bits_per_dim, input_signature=[tf.TensorSpec((None, None, None, 2), tf.float64)])
    np.testing.assert_allclose(unknown(x).numpy(), to_numpy(model.bits_per_dim(images)), rtol=1e-12)

    @tf.function(input_signature=[tf.TensorSpec((None, *IMAGE_SHAPE), tf.float64)])
    def score(x):  # a tape inside a traced function, batch size unknown to the checks
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(model.log_prob(x))
        return tape.gradient(total, x)

    np.testing.assert_allclose(score(x).numpy(), gradient(model.log_prob, images), rtol=1e-9, atol=1e-12)
    # A tape that does not watch the input gives it no gradient (nothing flows by accident).
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        total = tf.reduce_sum(model.log_prob(x))
    assert tape.gradient(total, x) is None


@pytest.mark.skipif(BACKEND != "tensorflow", reason="symbolic TensorFlow tensors")
def test_tensorflow_value_checks_run_where_values_exist(model, images):
    import tensorflow as tf

    nan = images.copy()
    nan[0, 0, 0, 0] = np.nan
    x = tf.constant(nan)
    with pytest.raises(ValueError, match="NaN or infinite"), tf.GradientTape() as tape:  # eager: checked
        tape.watch(x)
        model.log_prob(x)
    # Inside a tf.function the input is symbolic: the value check is skipped, the shape checked.
    result = tf.function(model.log_prob)(x).numpy()
    assert np.isnan(result[0]) and np.isfinite(result[1])
    with pytest.raises(ValueError, match="1 channels but the model was built for 2"):
        tf.function(model.log_prob)(tf.constant(images[..., :1]))


@pytest.mark.skipif(BACKEND != "torch", reason="torch autograd")
def test_torch_value_checks_run_under_autograd(model, images):
    import torch

    nan = torch.tensor(images, requires_grad=True)
    with torch.no_grad():
        nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.log_prob(nan)
    latents = model.encode(images)
    first = latents[0].clone()
    first[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"latents\[0\] contains NaN"):
        model.decode([first.requires_grad_(True), *latents[1:]])


@pytest.mark.skipif(BACKEND != "torch", reason="torch.func")
def test_torch_func_grad_gives_the_autograd_score(model, images):
    import torch

    score = torch.func.grad(lambda x: model.log_prob(x).sum())(torch.tensor(images))
    np.testing.assert_allclose(score.detach().numpy(), gradient(model.log_prob, images), rtol=1e-12, atol=0)
