"""Bad input gets a specific ValueError before any computation."""

import numpy as np
import pytest

from keras_realnvp import RealNVP


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
    conditional = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1, condition_dim=3)
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
