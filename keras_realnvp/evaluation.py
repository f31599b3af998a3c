"""Held-out bits/dim, the number Table 1 of the paper reports."""

import math

import keras
import numpy as np
from keras import ops
from numpy.typing import ArrayLike

from keras_realnvp.data.embedded import dequantize_numpy
from keras_realnvp.models.flow import bits_per_dim_from_log_prob
from keras_realnvp.models.input_checks import check_count, check_images, check_labels


def held_out_bits_per_dim(
    model, pixels: ArrayLike, num_draws: int = 1, seed: int = 0, batch_size: int = 256, labels: ArrayLike = None,
    verbose: int = 0,
) -> tuple[float, float]:
    """Mean bits/dim of integer `pixels` under `model`, and its standard error.

    Every image is dequantized `num_draws` times with `dequantize_numpy` (draw `d`
    uses the seed `(seed, d)`, so a fixed `seed` gives the same noise on every run
    and backend), scored by the model in evaluation mode in compiled batches of
    `batch_size`, and its bits/dim averaged over the draws. The standard error is
    that of the mean over images (sample standard deviation / sqrt(N)); it is NaN
    for a single image.

    Args:
        model: a `RealNVP`.
        pixels: `(N, H, W, C)` integers 0..255, e.g. `load_embedded_patches("test")`.
        num_draws: dequantization draws per image (more draws: less noise variance).
        seed: seed of the dequantization noise.
        batch_size: images per compiled forward pass.
        labels: `(N, label_dim)` label vectors of the images, for a conditional model
            (its log-likelihood is `log p(x | y)`); `None` for an unconditional one.
        verbose: 0 silent; 1 a `keras.utils.Progbar` over the images scored (all draws),
            advanced after each batch; 2 one line when done (Keras' `verbose=2`).

    Returns:
        `(mean, standard_error)` as Python floats.

    Example:

    >>> import numpy as np
    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1, seed=0)
    >>> pixels = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    >>> mean, standard_error = held_out_bits_per_dim(model, pixels, num_draws=2, batch_size=4)
    >>> 6.0 < mean < 12.0 and standard_error > 0.0
    True
    >>> conditional = RealNVP(image_shape=(8, 8, 3), num_scales=1, filters=4, num_blocks=1, label_dim=2)
    >>> labels = np.eye(2, dtype="float32")[[0, 1, 1, 0, 0, 1]]
    >>> 6.0 < held_out_bits_per_dim(conditional, pixels, labels=labels)[0] < 12.0
    True

    The progress bar changes nothing but what is shown:

    >>> held_out_bits_per_dim(model, pixels, num_draws=2, batch_size=4, verbose=2) == (mean, standard_error)
    ... # doctest: +ELLIPSIS
    12/12 - ...
    True
    """
    label_dim = getattr(model, "label_dim", None)
    if label_dim is None and labels is not None:
        raise ValueError("labels were given, but the model is unconditional (label_dim=None).")
    if label_dim is not None and labels is None:
        raise ValueError(f"The model is conditional (label_dim={label_dim}): pass the images' labels.")
    num_draws, batch_size = check_count(num_draws, "num_draws"), check_count(batch_size, "batch_size")
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}.")
    # The model's own shape and range rules, checked before anything is compiled.
    pixels = ops.convert_to_numpy(
        check_images(pixels, model.image_shape[-1], model.spatial_multiple, model.min_spatial_size)
    )
    count, dims = pixels.shape[0], math.prod(pixels.shape[1:])
    if labels is not None:
        labels = np.asarray(ops.convert_to_numpy(check_labels(labels, label_dim, count)), dtype=np.float32)
    # Equal batches, the last one padded with repeated images whose scores are dropped:
    # a smaller last batch would cost a second compilation (several seconds on JAX).
    num_batches = math.ceil(count / batch_size)
    batch_size = math.ceil(count / num_batches)
    padded = np.concatenate([pixels, pixels[: num_batches * batch_size - count]])
    if labels is not None:
        padded_labels = np.concatenate([labels, labels[: num_batches * batch_size - count]])
    bits = np.zeros(count, np.float64)
    progress = keras.utils.Progbar(count * num_draws, verbose=verbose, unit_name="image") if verbose else None
    for draw in range(num_draws):
        x = dequantize_numpy(padded, (seed, draw))
        log_prob = np.empty(num_batches * batch_size, np.float64)
        # One `predict` per batch so that the bar advances per batch; each batch is scored by the
        # same compiled function on the same images as one `predict` over all of them would.
        for start in range(0, num_batches * batch_size, batch_size):
            part = slice(start, start + batch_size)
            inputs = x[part] if labels is None else {"images": x[part], "labels": padded_labels[part]}
            # `predict` runs the model's `call` compiled; on float inputs that is the
            # log-likelihood in nats, with no dequantization of its own.
            log_prob[part] = ops.convert_to_numpy(model.predict(inputs, batch_size=batch_size, verbose=0))
            if progress is not None:
                progress.add(min(batch_size, count - start) if start < count else 0)
        bits += bits_per_dim_from_log_prob(log_prob[:count], dims)
    bits /= num_draws
    mean = float(bits.mean())
    standard_error = float(bits.std(ddof=1) / math.sqrt(bits.size)) if bits.size > 1 else float("nan")
    return mean, standard_error
