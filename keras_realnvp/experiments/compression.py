"""Conceptual compression (appendix D): keep the coarsest latents, resample the rest, decode.

Which units are "the coarsest fraction f" of the latents: `model.encode` returns one
tensor per scale, finest first, holding 1/2, 1/4, ... of the units and the last scale
the rest (for `num_scales = 2`: 1/2 and 1/2). The units are ordered coarsest first:

1. scales from the last (coarsest) to the first (finest);
2. inside a scale, by channel: all positions of channel 0, then of channel 1, ...

and whole channels are kept in that order. Scales are kept whole while they fit in
`f * total` units; of the next scale, a leading channel slice `z[..., :k]` is kept, with
`k` the whole number of channels nearest to the remainder (halves round up); finer scales
are resampled entirely. So a fraction on a scale boundary (1/2, 3/4, ... for the paper's
multi-scale models: 100%, 50%, 25%, 12.5%, 6.25% with five scales) is kept exactly,
and any other one to within half a channel of that scale. `kept_channels` gives the
channels kept per scale and `kept_fraction` the exact fraction of units that is.
"""

import numpy as np

from keras_realnvp.experiments._common import (
    as_label_array,
    as_numpy_batch,
    check_model,
    check_temperature,
    decode_in_batches,
    encode_in_batches,
    to_numpy,
)
from keras_realnvp.visualization.image_grid import image_grid

# The paper's columns (figures 22-26).
PAPER_FRACTIONS = (1.0, 0.5, 0.25, 0.125, 0.0625)


def _check_fraction(keep_fraction):
    if isinstance(keep_fraction, bool) or not isinstance(keep_fraction, (int, float, np.number)):
        raise ValueError(f"keep_fraction must be a number in [0, 1], got {keep_fraction!r}.")
    if not 0.0 <= keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must lie in [0, 1], got {keep_fraction}.")
    return float(keep_fraction)


def kept_channels(model, keep_fraction: float, image_shape=None) -> list:
    """How many leading channels of each scale's latent `compress` keeps (finest scale first).

    See the module docstring for the order of the units.

    Args:
        model: a `RealNVP`.
        keep_fraction: the fraction of latent units to keep, in [0, 1].
        image_shape: `(H, W, C)` of the images; default the model's.

    Returns:
        A list of `num_scales` integers `k_s`: `z_s[..., :k_s]` is kept.

    Example:

    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(16, 16, 3), num_scales=3, filters=4, num_blocks=1)
    >>> model.latent_shapes()          # 384, 192 and 192 units
    [(8, 8, 6), (4, 4, 12), (4, 4, 12)]
    >>> [kept_channels(model, f) for f in (1.0, 0.5, 0.25, 0.125, 0.0625)]
    [[6, 12, 12], [0, 12, 12], [0, 0, 12], [0, 0, 6], [0, 0, 3]]
    """
    model = check_model(model)
    keep_fraction = _check_fraction(keep_fraction)
    shapes = model.latent_shapes(image_shape)
    sizes = [h * w * c for h, w, c in shapes]
    target = keep_fraction * sum(sizes)
    kept = [0] * len(shapes)
    taken = 0
    for s in reversed(range(len(shapes))):
        h, w, c = shapes[s]
        if taken + sizes[s] <= target:
            kept[s] = c
            taken += sizes[s]
            continue
        kept[s] = min(c, int(np.floor((target - taken) / (h * w) + 0.5)))
        break
    return kept


def kept_fraction(model, keep_fraction: float, image_shape=None) -> float:
    """The fraction of latent units that `compress(model, ..., keep_fraction)` really keeps.

    Example:

    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1)
    >>> [round(kept_fraction(model, f), 4) for f in (0.5, 0.25, 0.0625)]   # 6 channels of 16 units each
    [0.5, 0.25, 0.0833]
    """
    shapes = check_model(model).latent_shapes(image_shape)
    kept = kept_channels(model, keep_fraction, image_shape)
    total = sum(h * w * c for h, w, c in shapes)
    return sum(h * w * k for (h, w, _), k in zip(shapes, kept, strict=True)) / total


def compress(
    model,
    images,
    keep_fraction: float,
    temperature: float = 1.0,
    seed=None,
    labels=None,
    batch_size: int = 64,
    return_latents: bool = False,
):
    """Appendix D: encode, keep the coarsest `keep_fraction` of the latents, resample the rest, decode.

    The resampled units are those of `model.sample_latents(len(images), temperature,
    seed, images.shape[1:])` at the same places: with the same `seed`, every call (any
    `keep_fraction`) uses the same draw. The kept units are copied from `model.encode`,
    bit for bit. With `keep_fraction=1` nothing is resampled and the images come back
    up to the flow's round-trip error. Which units are kept: the module docstring and
    `kept_channels`.

    Args:
        model: a `RealNVP`.
        images: `(N, H, W, C)` pixel values in [0, 256).
        keep_fraction: fraction of the latent units kept, in [0, 1].
        temperature: standard deviation of the prior the other units are drawn from.
        seed: an integer for a reproducible draw; `None` uses the model's generator.
        labels: `(N, label_dim)` for a conditional model (used to encode and decode).
        batch_size: images encoded and decoded at a time.
        return_latents: also return the latents that were decoded.

    Returns:
        A float32 numpy array `(N, H, W, C)` (not clipped), or with `return_latents`
        the pair `(images, latents)`, latents one numpy array per scale, finest first.

    Example:

    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
    >>> x = np.random.default_rng(0).uniform(0, 256, (2, 8, 8, 1)).astype("float32")
    >>> float(np.abs(compress(model, x, 1.0) - x).max()) < 1e-2
    True
    >>> half, latents = compress(model, x, 0.5, temperature=0.7, seed=0, return_latents=True)
    >>> bool(np.all(latents[1] == np.asarray(model.encode(x)[1])))        # the coarser scale is kept
    True
    """
    model = check_model(model)
    keep_fraction = _check_fraction(keep_fraction)
    temperature = check_temperature(temperature)
    images = as_numpy_batch(images, "images")
    labels = as_label_array(labels, model, len(images))
    latents = encode_in_batches(model, images, labels, batch_size)
    kept = kept_channels(model, keep_fraction, images.shape[1:])
    noise = [to_numpy(z) for z in model.sample_latents(len(images), temperature, seed, images.shape[1:])]
    mixed = [np.concatenate([z[..., :k], n[..., k:]], axis=-1) for z, n, k in zip(latents, noise, kept, strict=True)]
    decoded = decode_in_batches(model, mixed, labels, batch_size)
    return (decoded, mixed) if return_latents else decoded


def compression_grid(
    model, images, fractions=PAPER_FRACTIONS, temperature=1.0, seed=None, labels=None, batch_size=64, padding=1
) -> np.ndarray:
    """Figures 22-26: one row per image, one column per kept fraction (left: 100%).

    Every column uses the same resampling draw (the same `seed`), so a row changes
    only through what is kept. Pixel values are floored and clipped to [0, 255] for
    display only (`visualization.image_grid`).

    Returns:
        A uint8 picture with `len(images)` rows and `len(fractions)` columns of tiles.

    Example:

    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
    >>> x = np.random.default_rng(0).uniform(0, 256, (3, 8, 8, 1)).astype("float32")
    >>> compression_grid(model, x, fractions=(1.0, 0.5), seed=0).shape
    (28, 19, 1)
    """
    if len(fractions) == 0:
        raise ValueError("fractions must list at least one fraction.")
    columns = [compress(model, images, f, temperature, seed, labels, batch_size) for f in fractions]
    tiles = np.stack(columns, axis=1)  # (N, F, H, W, C): row-major
    return image_grid(tiles.reshape(-1, *tiles.shape[2:]), num_columns=len(fractions), padding=padding)
