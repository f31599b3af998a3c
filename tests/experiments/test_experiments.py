"""The paper's experiments (keras_realnvp.experiments): manifold, compression, sampling, extrapolation.

A tiny 2-scale model (8x8x3 images, 4 hidden maps, 1 block) with randomized weights, so
the flow is far from the identity. Tolerances: round trips (decode(encode(x)))
1e-3 pixel levels in float32; the same computation in a different batching 1e-4;
copies of latents exact (bit for bit).
"""

import math

import keras
import numpy as np
import pytest
from helpers import randomize_weights, to_numpy

from keras_realnvp import RealNVP, experiments
from keras_realnvp.visualization import image_grid

ROUND_TRIP = 1e-3  # pixel levels
SAME = 1e-4  # the same decode, batched differently


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1, seed=0)
    randomize_weights(model, seed=5)
    return model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(7).uniform(0.0, 256.0, (4, 8, 8, 3)).astype("float32")


def _encode(model, x):
    return [to_numpy(z) for z in model.encode(x)]


# ------------------------------------------------------------------ manifold


def test_manifold_image_cells_reproduce_the_four_images(model, images):
    n = 8
    grid = experiments.manifold(model, images, num_steps=n)
    assert grid.shape == (n, n, 8, 8, 3)
    cells = experiments.manifold_image_cells(n)
    assert cells == {(0, 0): 0, (0, 2): 1, (2, 0): 2, (2, 2): 3}
    for (row, column), k in cells.items():
        error = np.abs(grid[row, column] - images[k]).max()
        assert error < ROUND_TRIP, f"cell {(row, column)} vs image {k}: {error} pixel levels"
    # Nothing is clipped in `manifold`: every cell is finite and inside the logit's preimage
    # (-14.2, 270.2) for alpha = 0.05; only the picture is clipped, to [0, 255].
    assert np.all(np.isfinite(grid))
    assert grid.min() > -256 * 0.05 / 0.9 - 1e-3 and grid.max() < 256 * 0.95 / 0.9 + 1e-3


def test_manifold_cells_follow_eq_19(model, images):
    n = 8
    grid = experiments.manifold(model, images, num_steps=n)
    latents = _encode(model, images)  # per scale: z1..z4 along the first axis
    cells = [(1, 3), (5, 6), (4, 0), (7, 1)]
    mixed = [[] for _ in latents]
    for row, column in cells:
        phi, phi_prime = 2 * math.pi * row / n, 2 * math.pi * column / n
        for scale, (z1, z2, z3, z4) in enumerate(latents):
            mixed[scale].append(
                math.cos(phi) * (math.cos(phi_prime) * z1 + math.sin(phi_prime) * z2)
                + math.sin(phi) * (math.cos(phi_prime) * z3 + math.sin(phi_prime) * z4)
            )
    expected = to_numpy(model.decode([np.stack(m).astype("float32") for m in mixed]))
    for (row, column), image in zip(cells, expected, strict=True):
        np.testing.assert_allclose(grid[row, column], image, atol=SAME, rtol=0)
    # (n/2, 0) is -z1: a different image, not the first one.
    assert np.abs(grid[4, 0] - images[0]).max() > 1.0


def test_manifold_grid_is_the_clipped_picture_of_manifold(model, images):
    cells = experiments.manifold(model, images, num_steps=4)
    picture = experiments.manifold_grid(model, images, num_steps=4)
    assert picture.dtype == np.uint8 and picture.shape == (4 * 9 + 1, 4 * 9 + 1, 3)
    expected = image_grid(np.clip(cells, 0, 255).reshape(16, 8, 8, 3), num_columns=4)
    np.testing.assert_array_equal(picture, expected)


def test_manifold_angles_are_exact_on_quarter_turns():
    angles = experiments.manifold_angles(8)
    np.testing.assert_array_equal(angles[[0, 2, 4, 6]], [[1, 0], [0, 1], [-1, 0], [0, -1]])
    k = np.arange(8)
    np.testing.assert_allclose(angles, np.stack([np.cos(2 * np.pi * k / 8), np.sin(2 * np.pi * k / 8)], 1), atol=1e-15)
    assert experiments.manifold_image_cells(6) == {(0, 0): 0}


def test_manifold_rejects_bad_input(model, images):
    with pytest.raises(ValueError, match="exactly 4 images"):
        experiments.manifold(model, images[:3])
    with pytest.raises(ValueError, match="num_steps"):
        experiments.manifold(model, images, num_steps=0)
    with pytest.raises(ValueError, match=r"\[0, 256\)"):
        experiments.manifold(model, images / 256.0 - 0.5)
    with pytest.raises(ValueError, match="RealNVP"):
        experiments.manifold("model", images)


# ---------------------------------------------------------- compression


def test_compress_keeping_everything_reproduces_the_input(model, images):
    result = experiments.compress(model, images, keep_fraction=1.0, temperature=1.0, seed=3)
    assert np.abs(result - images).max() < ROUND_TRIP


@pytest.mark.parametrize("fraction,kept", [(0.5, [0, 6]), (0.25, [0, 3]), (0.125, [0, 2]), (0.0, [0, 0])])
def test_compress_keeps_the_coarsest_latents_and_resamples_the_rest(model, images, fraction, kept):
    # Latents (4, 4, 6) per scale, 16 units per channel: 0.125 of 192 units is 1.5 channels -> 2 (halves up).
    assert experiments.kept_channels(model, fraction) == kept
    temperature, seed = 0.8, 11
    result, latents = experiments.compress(model, images, fraction, temperature, seed=seed, return_latents=True)
    original = _encode(model, images)
    noise = [to_numpy(z) for z in model.sample_latents(len(images), temperature, seed=seed)]
    for z, z_original, z_noise, k in zip(latents, original, noise, kept, strict=True):
        np.testing.assert_array_equal(z[..., :k], z_original[..., :k])  # kept: bit for bit
        np.testing.assert_array_equal(z[..., k:], z_noise[..., k:])  # resampled: the seed's prior draw
    np.testing.assert_allclose(result, to_numpy(model.decode(latents)), atol=SAME, rtol=0)
    again = experiments.compress(model, images, fraction, temperature, seed=seed)
    np.testing.assert_array_equal(again, result)
    assert np.abs(result - images).max() > 1.0  # something was resampled


def test_compress_keeping_nothing_is_sampling(model, images):
    result = experiments.compress(model, images, 0.0, temperature=0.7, seed=2)
    np.testing.assert_allclose(result, to_numpy(model.sample(4, temperature=0.7, seed=2)), atol=SAME, rtol=0)


def test_kept_channels_on_scale_boundaries_and_between(model):
    # Latent shapes (4, 4, 6) and (4, 4, 6): 96 + 96 units, 16 per channel (the doctest of
    # kept_channels has a 3-scale model).
    assert experiments.kept_channels(model, 1.0) == [6, 6]
    assert experiments.kept_channels(model, 0.5) == [0, 6]
    # 0.75 of 192 = 144: the coarser scale whole and 48 / 16 = 3 channels of the finer one.
    assert experiments.kept_channels(model, 0.75) == [3, 6]
    # 0.6 of 192 = 115.2: the coarser scale and 19.2 / 16 = 1.2 -> 1 channel.
    assert experiments.kept_channels(model, 0.6) == [1, 6]
    assert experiments.kept_fraction(model, 0.6) == (96 + 16) / 192
    # 0.0625 of 192 = 12 units = 0.75 channel -> 1 channel (the nearest whole channel).
    assert experiments.kept_channels(model, 0.0625) == [0, 1]
    assert experiments.kept_fraction(model, 0.0625) == 16 / 192
    # At 16x16 (extrapolation) a channel holds 64 units: 6.25% of 768 = 48 = 0.75 channel -> 1.
    assert experiments.kept_channels(model, 0.0625, image_shape=(16, 16, 3)) == [0, 1]
    assert experiments.kept_channels(model, 0.125, image_shape=(16, 16, 3)) == [0, 2]


def test_compress_rejects_bad_fractions_and_temperatures(model, images):
    for fraction in (-0.1, 1.5, float("nan"), "half"):
        with pytest.raises(ValueError, match="keep_fraction"):
            experiments.compress(model, images, fraction)
    with pytest.raises(ValueError, match="temperature"):
        experiments.compress(model, images, 0.5, temperature=-1.0)


def test_compression_grid_columns_are_the_fractions(model, images):
    picture = experiments.compression_grid(model, images, fractions=(1.0, 0.25), seed=4)
    assert picture.shape == (4 * 9 + 1, 2 * 9 + 1, 3) and picture.dtype == np.uint8
    quarter = experiments.compress(model, images, 0.25, seed=4)
    full = experiments.compress(model, images, 1.0, seed=4)
    expected = image_grid(np.stack([full, quarter], axis=1).reshape(8, 8, 8, 3), num_columns=2)
    np.testing.assert_array_equal(picture, expected)


# ------------------------------------------------------------- sampling


def test_temperature_zero_decodes_the_zero_latent(model):
    zeros = [np.zeros((4, *shape), "float32") for shape in model.latent_shapes()]
    expected = to_numpy(model.decode(zeros))
    np.testing.assert_array_equal(to_numpy(model.sample(4, temperature=0.0, seed=1)), expected)
    np.testing.assert_allclose(experiments.sample_in_batches(model, 4, temperature=0.0), expected, atol=SAME, rtol=0)


def test_sampling_is_seeded_batched_and_scaled_by_temperature(model):
    # Batches of 4 images (the shape the other tests use: each new shape costs a trace on JAX).
    first = experiments.sample_in_batches(model, 8, temperature=0.7, seed=9, batch_size=4)
    np.testing.assert_array_equal(first, experiments.sample_in_batches(model, 8, temperature=0.7, seed=9, batch_size=4))
    np.testing.assert_allclose(first, to_numpy(model.sample(8, temperature=0.7, seed=9)), atol=SAME, rtol=0)
    other = experiments.sample_in_batches(model, 8, temperature=0.7, seed=10, batch_size=4)
    assert np.abs(first - other).max() > 1.0
    assert np.all(np.isfinite(first))
    # z ~ N(0, T^2 I): the same seed's draw at T = 0.5 is half the draw at T = 1.
    one = [to_numpy(z) for z in model.sample_latents(4, 1.0, seed=9)]
    half = [to_numpy(z) for z in model.sample_latents(4, 0.5, seed=9)]
    for a, b in zip(one, half, strict=True):
        np.testing.assert_allclose(b, 0.5 * a, rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="temperature"):
        experiments.sample_in_batches(model, 2, temperature=float("inf"))
    with pytest.raises(ValueError, match="num_samples"):
        experiments.sample_in_batches(model, 0)


def test_sample_grid_puts_data_beside_samples(model, images):
    data = images.astype(np.uint8)
    picture = experiments.sample_grid(model, data, temperature=0.5, seed=1)
    left = image_grid(data)  # 2x2 tiles of 8x8, padding 1: 19x19
    right = image_grid(experiments.sample_in_batches(model, 4, temperature=0.5, seed=1))
    assert picture.shape == (19 + 8, 4 + 19 + 4 + 19 + 4, 3)
    np.testing.assert_array_equal(picture[4:23, 4:23], left)
    np.testing.assert_array_equal(picture[4:23, 27:46], right)


@pytest.mark.parametrize("factor,count", [(2, 4), (10, 1)])
def test_extrapolated_samples_have_the_requested_shape_and_are_finite(model, factor, count):
    samples = experiments.extrapolate(model, count, factor=factor, temperature=0.7, seed=3)
    assert samples.shape == (count, 8 * factor, 8 * factor, 3)
    assert np.all(np.isfinite(samples))
    assert samples.min() > -256 * 0.05 / 0.9 - 1e-3 and samples.max() < 256 * 0.95 / 0.9 + 1e-3
    assert samples.std() > 1.0  # not a constant image


def test_extrapolation_at_temperature_zero_is_the_zero_latent(model):
    samples = experiments.extrapolate(model, 4, factor=2, temperature=0.0)
    zeros = [np.zeros((4, *shape), "float32") for shape in model.latent_shapes((16, 16, 3))]
    np.testing.assert_allclose(samples, to_numpy(model.decode(zeros)), atol=SAME, rtol=0)
    with pytest.raises(ValueError, match="factor"):
        experiments.extrapolate(model, 1, factor=0)


# -------------------------------------------------------- the command line


def test_sample_tool_writes_every_unconditional_picture(model, tmp_path):
    from PIL import Image

    from keras_realnvp.cli import sample as sample_tool
    path = tmp_path / "model.keras"
    model.save(path)
    # The whole command once (load, draw, write) ...
    output = tmp_path / "samples.png"
    assert sample_tool.main(["--model", str(path), "--num", "4", "--scale", "2", "--output", str(output)]) == 0
    with Image.open(output) as picture:
        assert picture.size == (2 * (4 + 19 + 4 + 19 + 4), 2 * (19 + 8))  # 4 patches beside 4 samples, 2x
    # ... and every other picture from the model in memory.
    sizes = {}
    for experiment in ("manifold", "extrapolate", "compress"):
        args = sample_tool.parse_args(["--model", str(path), "--experiment", experiment, "--num", "4", "--steps", "4"])
        sizes[experiment] = sample_tool.draw(args, model).shape
    assert sizes == {
        "manifold": (4 * 9 + 1, 4 * 9 + 1, 3),  # 4x4 cells of 8x8
        "extrapolate": (2 * 18 + 2, 2 * 18 + 2, 3),  # 4 samples of 16x16, padding 2
        "compress": (4 * 9 + 1, 5 * 9 + 1, 3),  # 4 rows, 5 fractions
    }
    with pytest.raises(ValueError, match="swap needs a conditional model"):
        sample_tool.draw(sample_tool.parse_args(["--model", str(path), "--experiment", "swap"]), model)
