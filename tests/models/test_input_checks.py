"""Bad input gets a specific ValueError before any computation."""

import numpy as np
import pytest
from keras import ops

from keras_realnvp import RealNVP, RealNVP2D, experiments
from keras_realnvp.experiments._common import decode_in_batches


@pytest.fixture(scope="module")
def model():
    return RealNVP(image_shape=(16, 16, 3), num_scales=3, filters=4, num_blocks=1)


def _good(shape=(2, 16, 16, 3)):
    return np.full(shape, 100.5, "float32")


BAD_IMAGES = {
    "rank": (_good()[0], "rank 4"),
    "channels": (_good((2, 16, 16, 1)), "1 channels but the model was built for 3"),
    "not_divisible": (_good((2, 18, 16, 3)), "height 18 is not divisible by 4"),
    "too_small": (_good((2, 4, 8, 3)), "height 4 is smaller than this model allows \\(8\\)"),
    "negative": (np.full((2, 16, 16, 3), -0.5, "float32"), "must lie in \\[0, 256\\)"),
    "too_large": (np.full((2, 16, 16, 3), 256.0, "float32"), "must lie in \\[0, 256\\)"),
    "rescaled_above": (np.full((2, 16, 16, 3), 300, "int32"), "must lie in \\[0, 256\\)"),
    "nan": (np.where(np.arange(2 * 16 * 16 * 3).reshape(2, 16, 16, 3) == 5, np.nan, 1.0), "NaN or infinite"),
    "inf": (np.full((2, 16, 16, 3), np.inf), "NaN or infinite"),
    "string": (np.array([["a"]]), "integer or floating dtype"),
    "complex": (np.ones((2, 16, 16, 3), "complex64"), "integer or floating dtype"),
    "bool": (np.ones((2, 16, 16, 3), bool), "integer or floating dtype"),
    "empty": (np.zeros((0, 16, 16, 3), "float32"), "empty batch"),
}


@pytest.mark.parametrize("method", ["log_prob", "bits_per_dim", "encode"])
@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_images_are_rejected(model, method, case):
    images, message = BAD_IMAGES[case]
    with pytest.raises(ValueError, match=message):
        getattr(model, method)(images)


def test_edge_pixel_values_are_accepted(model):
    for value in (0.0, 255.999):
        assert np.all(np.isfinite(np.asarray(model.bits_per_dim(np.full((1, 16, 16, 3), value, "float32")))))
    assert np.all(np.isfinite(np.asarray(model.log_prob(np.full((1, 16, 16, 3), 255, "uint8")))))


def test_bad_latents_are_rejected(model):
    latents = model.encode(_good())
    with pytest.raises(ValueError, match="list of 3 tensors"):
        model.decode(latents[:2])
    with pytest.raises(ValueError, match="list of 3 tensors"):
        model.decode(np.zeros((2, 8, 8, 6)))
    wrong = [np.asarray(latents[0]), np.zeros((2, 4, 4, 5), "float32"), np.asarray(latents[2])]
    with pytest.raises(ValueError, match=r"latents\[1\] has shape \(2, 4, 4, 5\), expected \(2, 4, 4, 12\)"):
        model.decode(wrong)
    nan = [np.asarray(z).copy() for z in latents]
    nan[2][0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"latents\[2\] contains NaN"):
        model.decode(nan)


def test_bad_sampling_arguments_are_rejected(model):
    with pytest.raises(ValueError, match="num_samples"):
        model.sample(0)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(2, temperature=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(2, temperature=float("nan"))
    with pytest.raises(ValueError, match="width 10 must be a multiple of 4"):
        model.sample(1, image_shape=(16, 10, 3))
    with pytest.raises(ValueError, match="channels"):
        model.sample(1, image_shape=(16, 16, 1))


def test_labels_are_checked(model):
    with pytest.raises(ValueError, match="not conditional"):
        model.log_prob(_good(), labels=np.zeros((2, 3)))
    conditional = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1, label_dim=3)
    with pytest.raises(ValueError, match="conditional: pass labels of shape \\(batch, 3\\)"):
        conditional.log_prob(_good((2, 8, 8, 1)))
    with pytest.raises(ValueError, match=r"labels must have shape \(2, 3\), got \(2, 4\)"):
        conditional.log_prob(_good((2, 8, 8, 1)), labels=np.zeros((2, 4)))


def test_bad_constructor_arguments_are_rejected():
    with pytest.raises(ValueError, match="image_shape"):
        RealNVP(image_shape=(16, 16))
    with pytest.raises(ValueError, match="num_scales"):
        RealNVP(image_shape=(16, 16, 3), num_scales=0)
    with pytest.raises(ValueError, match="multiple of 8"):
        RealNVP(image_shape=(20, 20, 3), num_scales=4)


# ------------------------------------------------ the same checks behind every public entry point


@pytest.fixture(scope="module")
def toy():
    return RealNVP2D(num_couplings=2, filters=4)


def _entry_points(model, toy):
    """Every public function that takes (num_samples, temperature): the same call must fail the same way."""
    return {
        "RealNVP.sample": model.sample,
        "RealNVP.sample_latents": model.sample_latents,
        "sample_in_batches": lambda *a, **k: experiments.sample_in_batches(model, *a, **k),
        "RealNVP2D.sample": toy.sample,
        "RealNVP2D.sample_latents": toy.sample_latents,
    }


BAD_COUNTS = {
    "none": (None, r"num_samples must be a positive integer, got None\."),
    "fraction": (1.7, r"num_samples must be a positive integer, got 1\.7\."),
    "whole_float": (2.0, r"num_samples must be a positive integer, got 2\.0\."),
    "string": ("3", r"num_samples must be a positive integer, got '3'\."),
    "bool": (True, r"num_samples must be a positive integer, got True\."),
    "zero": (0, r"num_samples must be a positive integer, got 0\."),
    "negative_numpy": (np.int64(-2), r"num_samples must be a positive integer, got np\.int64\(-2\)\.|got -2\."),
    "array": (np.array([2, 3]), r"num_samples must be a positive integer, got ndarray of shape \(2,\)\."),
}


@pytest.mark.parametrize("case", sorted(BAD_COUNTS))
def test_bad_sample_counts_get_the_same_error_everywhere(model, toy, case):
    value, message = BAD_COUNTS[case]
    errors = set()
    for sample in _entry_points(model, toy).values():
        with pytest.raises(ValueError, match=message) as error:
            sample(value)
        errors.add(str(error.value))
    assert len(errors) == 1, errors


BAD_TEMPERATURES = {
    "string": ("1", r"temperature must be a real number \(the prior's standard deviation\), got '1'\."),
    "array": (np.array([0.5, 1.0]), r"temperature must be a real number .*got ndarray of shape \(2,\)\."),
    "list": ([1.0], r"temperature must be a real number .*got \[1\.0\]\."),
    "bool": (True, r"temperature must be a real number .*got True\."),
    "none": (None, r"temperature must be a real number .*got None\."),
    "negative": (-1.0, r"temperature must be finite and >= 0, got -1\.0\."),
    "nan": (float("nan"), r"temperature must be finite and >= 0, got nan\."),
    "inf": (np.float32(np.inf), r"temperature must be finite and >= 0, got inf\."),
}


@pytest.mark.parametrize("case", sorted(BAD_TEMPERATURES))
def test_bad_temperatures_get_the_same_error_everywhere(model, toy, case):
    value, message = BAD_TEMPERATURES[case]
    errors = set()
    for sample in _entry_points(model, toy).values():
        with pytest.raises(ValueError, match=message) as error:
            sample(2, temperature=value)
        errors.add(str(error.value))
    assert len(errors) == 1, errors


def test_numpy_scalars_are_counts_and_temperatures(model, toy):
    # No decoding here (each new batch shape compiles): the draws alone show the arguments were taken.
    latents = model.sample_latents(np.int64(2), temperature=np.float32(0.5), seed=np.int32(1))
    assert [tuple(z.shape) for z in latents] == [(2, 8, 8, 6), (2, 4, 4, 12), (2, 4, 4, 12)]
    half = [np.asarray(ops.convert_to_numpy(z)) for z in latents]
    full = [np.asarray(ops.convert_to_numpy(z)) for z in model.sample_latents(2, temperature=1, seed=1)]
    for a, b in zip(half, full, strict=True):
        np.testing.assert_allclose(a, 0.5 * b, rtol=1e-6, atol=0)
    assert tuple(toy.sample(np.uint8(3), temperature=np.float64(0.0)).shape) == (3, 2)


BAD_IMAGE_SHAPES = {
    "two_entries": (
        (16, 16),
        r"^image_shape must be \(height, width, channels\), three positive integers; got \(16, 16\)\.",
    ),
    "float_entry": ((16, 16.0, 3), r"three positive integers; got \(16, 16\.0, 3\)\."),
    "string": ("16x16x3", r"three positive integers; got '16x16x3'\."),
    "scalar": (16, r"three positive integers; got 16\."),
    "zero": ((0, 16, 3), r"three positive integers; got \(0, 16, 3\)\."),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGE_SHAPES))
def test_bad_image_shapes_get_the_same_error_everywhere(model, case):
    value, message = BAD_IMAGE_SHAPES[case]
    calls = [
        lambda: model.sample(1, image_shape=value),
        lambda: model.sample_latents(1, image_shape=value),
        lambda: model.latent_shapes(value),
        lambda: experiments.sample_in_batches(model, 1, image_shape=value),
        lambda: RealNVP(image_shape=value, num_scales=1, filters=2, num_blocks=0),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=message):
            call()


WRONG_LATENTS = {
    # Would be images of height 10, not a multiple of 4: once reported as an `image_shape` error.
    "height_not_a_multiple": (
        [(2, 5, 8, 6), (2, 2, 4, 12), (2, 2, 4, 12)],
        r"latents\[0\] has shape \(2, 5, 8, 6\); for this model \(num_scales=3, 3 image channels\) latents\[0\] "
        r"must be \(batch, h, w, 6\) with h and w multiples of 2 and at least 4",
    ),
    "too_small": ([(2, 2, 2, 6), (2, 1, 1, 12), (2, 1, 1, 12)], r"latents\[0\] has shape \(2, 2, 2, 6\); .*at least 4"),
    "channels": ([(2, 8, 8, 4), (2, 4, 4, 8), (2, 4, 4, 8)], r"latents\[0\] .*must be \(batch, h, w, 6\)"),
    "later_scale": (
        [(2, 8, 8, 6), (2, 4, 4, 12), (2, 2, 2, 24)],
        r"latents\[2\] has shape \(2, 2, 2, 24\), expected \(2, 4, 4, 12\): after latents\[0\] of shape "
        r"\(2, 8, 8, 6\) the latents of this model are \[\(2, 8, 8, 6\), \(2, 4, 4, 12\), \(2, 4, 4, 12\)\]",
    ),
    "batch_sizes_differ": ([(2, 8, 8, 6), (3, 4, 4, 12), (2, 4, 4, 12)], r"latents\[1\] has shape \(3, 4, 4, 12\)"),
    "empty_batch": ([(0, 8, 8, 6), (0, 4, 4, 12), (0, 4, 4, 12)], r"latents is an empty batch"),
}


@pytest.mark.parametrize("case", sorted(WRONG_LATENTS))
def test_wrongly_shaped_latents_are_explained_in_terms_of_latents(model, case):
    shapes, message = WRONG_LATENTS[case]
    latents = [np.zeros(shape, "float32") for shape in shapes]
    for decode in (model.decode, lambda z: decode_in_batches(model, z, batch_size=4)):
        with pytest.raises(ValueError, match=message) as error:
            decode(latents)
        assert "image_shape" not in str(error.value)


def test_one_scale_latents_are_checked_too():
    one = RealNVP(image_shape=(4, 4, 1), num_scales=1, filters=2, num_blocks=0)
    with pytest.raises(ValueError, match=r"latents\[0\] has shape \(1, 4, 4, 2\); .*must be \(batch, h, w, 1\)"):
        one.decode([np.zeros((1, 4, 4, 2), "float32")])
    with pytest.raises(ValueError, match=r"list of 1 tensors .*got ndarray of shape \(1, 4, 4, 1\)"):
        one.decode(np.zeros((1, 4, 4, 1), "float32"))
