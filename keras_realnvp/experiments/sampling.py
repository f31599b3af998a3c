"""Sampling (figure 5) with temperature, in batches; sample grids; extrapolation (appendix C)."""

import numpy as np

from keras_realnvp.experiments._common import (
    as_label_array,
    as_numpy_batch,
    check_model,
    check_positive_int,
    check_temperature,
    decode_in_batches,
    side_by_side,
)
from keras_realnvp.visualization.image_grid import image_grid


def sample_in_batches(
    model, num_samples, temperature=1.0, seed=None, image_shape=None, labels=None, batch_size=64
) -> np.ndarray:
    """`model.sample`, decoded `batch_size` images at a time: the same images, bounded memory.

    All latents `z ~ N(0, T^2 I)` are drawn at once, exactly as `model.sample(num_samples,
    temperature, seed, image_shape)` draws them, and then decoded in slices, so the result
    does not depend on `batch_size` (and equals `model.sample` up to float rounding).

    Args:
        model: a `RealNVP`.
        num_samples: how many images.
        temperature: standard deviation `T` of the prior draw; 0 decodes the zero latent.
        seed: an integer for reproducible samples; `None` uses the model's generator.
        image_shape: `(H, W, C)` to sample at another size (see `extrapolate`).
        labels: `(num_samples, label_dim)` label vectors for a conditional model.
        batch_size: images decoded at a time.

    Returns:
        A float32 numpy array `(num_samples, H, W, C)` of pixel values, not clipped
        (see `RealNVP.decode` for their range).

    Example:

    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
    >>> samples = sample_in_batches(model, 5, temperature=0.7, seed=0, batch_size=2)
    >>> samples.shape
    (5, 8, 8, 1)
    >>> bool(np.allclose(samples, np.asarray(model.sample(5, temperature=0.7, seed=0)), atol=1e-3))
    True
    """
    model = check_model(model)
    num_samples = check_positive_int(num_samples, "num_samples")
    temperature = check_temperature(temperature)
    labels = as_label_array(labels, model, num_samples)
    latents = model.sample_latents(num_samples, temperature, seed, image_shape)
    return decode_in_batches(model, latents, labels, batch_size)


def sample_grid(
    model, data, num_samples=None, temperature=1.0, seed=None, labels=None, batch_size=64, padding=4
) -> np.ndarray:
    """Figure 5's picture: a grid of data images beside a grid of samples.

    Args:
        model: a `RealNVP`.
        data: `(N, H, W, C)` pixel values (uint8 or floats on the 0..255 scale) to show on
            the left, e.g. held-out images.
        num_samples: samples on the right; default `N`.
        temperature: standard deviation of the prior draw.
        seed: an integer for reproducible samples.
        labels: label vectors of the samples for a conditional model.
        batch_size: images decoded at a time.
        padding: black pixels around and between the two grids.

    Returns:
        A uint8 picture `(height, width, C)`. Pixel values are floored and clipped to
        [0, 255] for display only (`visualization.image_grid`); samples can leave
        [0, 256) a little (see `RealNVP.decode`). Write it with
        `visualization.save_image_grid(picture[None], path, padding=0)`.

    Example:

    >>> import numpy as np
    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
    >>> data = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
    >>> sample_grid(model, data, seed=0).shape        # two 2x2 grids of 8x8 tiles, padding 1 and 4
    (27, 50, 1)
    """
    model = check_model(model)
    data = as_numpy_batch(data, "data")
    if data.ndim != 4:
        raise ValueError(f"data must have rank 4, (N, height, width, channels); got shape {data.shape}.")
    num_samples = len(data) if num_samples is None else num_samples
    samples = sample_in_batches(model, num_samples, temperature, seed, labels=labels, batch_size=batch_size)
    return side_by_side([image_grid(data), image_grid(samples)], padding=padding)


def extrapolate(model, num_samples, factor=2, temperature=1.0, seed=None, labels=None, batch_size=16) -> np.ndarray:
    """Appendix C: samples `factor` times larger in height and width than the training images.

    The model is fully convolutional, so `factor * H x factor * W` latents decode into
    larger images (`model.sample(..., image_shape=...)`); any integer factor keeps the
    sizes divisible as the squeezes need. The paper shows factors 2 and 10.

    Args:
        model: a `RealNVP`.
        num_samples: how many images.
        factor: integer enlargement of height and width, at least 1.
        temperature: standard deviation of the prior draw.
        seed: an integer for reproducible samples.
        labels: label vectors for a conditional model.
        batch_size: images decoded at a time.

    Returns:
        A float32 numpy array `(num_samples, factor * H, factor * W, C)`, not clipped.

    Example:

    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1)
    >>> extrapolate(model, 2, factor=3, seed=0).shape
    (2, 24, 24, 3)
    """
    model = check_model(model)
    factor = check_positive_int(factor, "factor")
    height, width, channels = model.image_shape
    shape = (factor * height, factor * width, channels)
    return sample_in_batches(model, num_samples, temperature, seed, shape, labels, batch_size)
