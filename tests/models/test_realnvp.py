"""The RealNVP model: exact inverse, exact log-determinant, analytic density, saving."""

import math

import keras
import numpy as np
import pytest
from helpers import check_inverse, check_log_det, randomize_weights, to_numpy

from keras_realnvp import RealNVP


def _pixels(rng, shape):
    return rng.uniform(0.0, 256.0, size=shape).astype("float32")


def test_cifar10_depth_round_trip_with_random_weights(rng):
    # The `cifar10` architecture of docs/paper.md: 2 scales, 64 maps, 8 residual blocks.
    model = RealNVP(image_shape=(32, 32, 3), num_scales=2, filters=64, num_blocks=8)
    randomize_weights(model, seed=1)
    x = _pixels(rng, (2, 32, 32, 3))
    latents = model.encode(x)
    # The weights really are not the identity: couplings and batch norms change the volume.
    coupling_log_det = (
        to_numpy(model.log_prob(x)) - to_numpy(model.prior_log_prob(latents)) - to_numpy(model.logit(x)[1])
    )
    assert np.all(np.abs(coupling_log_det) > 10.0), coupling_log_det
    error = np.abs(to_numpy(model.decode(latents)) - x).max()
    assert error < 1e-3, f"round trip error {error} pixel levels"


def test_model_log_det_matches_brute_force_jacobian(rng):
    # The same checks as every bijector's (tests/helpers.py), on the whole flow in float64.
    model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1, dtype="float64")
    randomize_weights(model, seed=2)
    x = rng.uniform(1.0, 255.0, size=(2, 8, 8, 3))
    check_log_det(model.forward_flow, x, atol=1e-5)
    check_inverse(lambda batch: model.forward_flow(batch)[0], model.inverse_flow, x, atol=1e-9)
    # and log_prob is the prior of the latents plus that log-det (log_prob runs compiled: on JAX
    # the float64 sums round differently, 4e-8 nats on about 860)
    log_det = to_numpy(model.log_prob(x)) - to_numpy(model.prior_log_prob(model.encode(x)))
    np.testing.assert_allclose(log_det, to_numpy(model.forward_flow(x)[1]), atol=1e-6, rtol=0)


def _set_couplings_to_identity(model):
    for v in model.weights:
        path = v.path
        if "coupling" in path and (path.endswith("st_net/head/scale") or path.endswith("st_net/head/bias")):
            v.assign(np.zeros(v.shape))
        elif "coupling" in path and path.endswith("/scale") and "st_net" not in path:
            v.assign(np.zeros(v.shape))
        elif "batch_norm" in path and path.endswith("moving_mean") and "st_net" not in path:
            v.assign(np.zeros(v.shape))
        elif "batch_norm" in path and path.endswith("moving_variance") and "st_net" not in path:
            v.assign(np.full(v.shape, 1.0 - model.bn_epsilon))


@pytest.mark.parametrize("image_shape,num_scales", [((8, 8, 1), 2), ((16, 16, 3), 3)])
def test_identity_couplings_give_closed_form_density(rng, image_shape, num_scales):
    model = RealNVP(image_shape=image_shape, num_scales=num_scales, filters=4, num_blocks=1, dtype="float64")
    randomize_weights(model, seed=3)  # everything random ...
    _set_couplings_to_identity(model)  # ... except s = t = 0 and identity batch norms
    x = rng.uniform(0.0, 256.0, size=(3, *image_shape))
    alpha = 0.05
    p = alpha + (1 - 2 * alpha) * x / 256.0
    y = np.log(p) - np.log1p(-p)
    gaussian = np.sum(-0.5 * y**2 - 0.5 * np.log(2 * np.pi), axis=(1, 2, 3))
    logit_log_det = np.sum(np.log((1 - 2 * alpha) / 256.0) - np.log(p) - np.log1p(-p), axis=(1, 2, 3))
    expected = gaussian + logit_log_det
    np.testing.assert_allclose(to_numpy(model.log_prob(x)), expected, rtol=1e-10)
    dims = math.prod(image_shape)
    np.testing.assert_allclose(to_numpy(model.bits_per_dim(x)), -expected / (dims * np.log(2)), rtol=1e-10)


def test_latent_shapes_follow_the_multiscale_recursion(rng):
    model = RealNVP(image_shape=(32, 32, 3), num_scales=4, filters=4, num_blocks=1)
    assert model.latent_shapes() == [(16, 16, 6), (8, 8, 12), (4, 4, 24), (4, 4, 24)]
    latents = model.encode(_pixels(rng, (2, 32, 32, 3)))
    assert [tuple(z.shape)[1:] for z in latents] == model.latent_shapes()
    assert sum(math.prod(s) for s in model.latent_shapes()) == 32 * 32 * 3


def test_architecture_matches_the_paper():
    model = RealNVP(image_shape=(32, 32, 3), num_scales=2, filters=64, num_blocks=8)
    couplings = [
        (layer.mask_type, layer.filters, layer.reverse)
        for chain in [*model.checkerboard_flows, *model.channel_flows, model.final_flow]
        for layer in chain.bijectors
        if hasattr(layer, "mask_type")
    ]
    assert couplings == [
        ("checkerboard", 64, False), ("checkerboard", 64, True), ("checkerboard", 64, False),
        ("channel", 128, False), ("channel", 128, True), ("channel", 128, False),
        ("checkerboard", 128, False), ("checkerboard", 128, True), ("checkerboard", 128, False),
        ("checkerboard", 128, True),
    ]
    # docs/paper.md §7: about 19.5 M parameters for the CIFAR-10 architecture.
    assert 18e6 < model.count_params() < 21e6


def test_temperature_zero_samples_decode_the_zero_latent():
    model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1)
    randomize_weights(model, seed=4)
    zeros = [np.zeros((2, *s), "float32") for s in model.latent_shapes()]
    np.testing.assert_allclose(to_numpy(model.sample(2, temperature=0.0, seed=0)), to_numpy(model.decode(zeros)))


def test_seeded_sampling_is_reproducible_and_unseeded_varies():
    model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1, seed=5)
    a, b = to_numpy(model.sample(3, seed=7)), to_numpy(model.sample(3, seed=7))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(to_numpy(model.sample(3)), to_numpy(model.sample(3)))
    assert np.all(np.isfinite(a))


def test_save_and_load_round_trip(tmp_path, rng):
    model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1)
    randomize_weights(model, seed=6)
    x = _pixels(rng, (4, 8, 8, 3))
    expected = to_numpy(model.bits_per_dim(x))

    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(reloaded, RealNVP)
    np.testing.assert_array_equal(to_numpy(reloaded.bits_per_dim(x)), expected)

    model.save_weights(tmp_path / "m.weights.h5")
    fresh = RealNVP.from_config(model.get_config())
    assert not np.allclose(to_numpy(fresh.bits_per_dim(x)), expected)
    fresh.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_array_equal(to_numpy(fresh.bits_per_dim(x)), expected)


def test_loss_is_the_nats_per_image_objective_plus_the_l2_penalty():
    model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=2)
    names = {v.path.rsplit("/", 1)[-1] for v in model.weight_scale_variables()}
    assert names == {"scale"}
    # 10 couplings x (3 skips + head + 2 blocks' conv_b) + 10 coupling scales.
    assert len(model.weight_scale_variables()) == 10 * 6 + 10
    x = np.full((2, 8, 8, 1), 100.5, "float32")
    y_pred = model(x)
    loss_with = float(to_numpy(model.compute_loss(x=x, y_pred=y_pred)))
    penalty = sum(float(np.sum(to_numpy(v) ** 2)) for v in model.weight_scale_variables())
    np.testing.assert_allclose(float(to_numpy(model.l2_penalty())), penalty, rtol=1e-6)
    nll_nats = -float(np.mean(to_numpy(y_pred)))  # per image, not per dimension
    np.testing.assert_allclose(loss_with, nll_nats + 5e-5 * penalty, rtol=1e-6)
