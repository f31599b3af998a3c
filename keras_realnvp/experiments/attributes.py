"""Attribute swapping with a conditional Real NVP (appendix F): `x' = g(f(x; y); y')`."""

import numpy as np

from keras_realnvp.experiments._common import (
    as_label_array,
    as_numpy_batch,
    check_model,
    decode_in_batches,
    encode_in_batches,
)
from keras_realnvp.visualization.image_grid import image_grid


def _check_conditional(model):
    model = check_model(model)
    if model.label_dim is None:
        raise ValueError("Attribute swapping needs a conditional model: RealNVP(..., label_dim=K).")
    return model


def swap_attributes(model, images, labels, new_labels, batch_size: int = 64) -> np.ndarray:
    """Encode each image with its own labels and decode with other ones: `g(f(x; y); y')`.

    With `new_labels == labels` this is the identity (up to the flow's round-trip
    error); otherwise the latent "style" of each image is rendered under the new
    labels, as appendix F does with CelebA's attributes.

    Args:
        model: a conditional `RealNVP` (`label_dim=K`).
        images: `(N, H, W, C)` pixel values in [0, 256).
        labels: `(N, K)` the images' label vectors (e.g. `one_hot(classes, K)`).
        new_labels: `(N, K)` the label vectors to decode with.
        batch_size: images encoded and decoded at a time.

    Returns:
        A float32 numpy array `(N, H, W, C)`, not clipped (see `RealNVP.decode`).

    Example:

    >>> from keras_realnvp import RealNVP
    >>> from keras_realnvp.experiments import one_hot
    >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1, label_dim=2)
    >>> x = np.random.default_rng(0).uniform(0, 256, (2, 8, 8, 1)).astype("float32")
    >>> y = one_hot([0, 1], 2)
    >>> float(np.abs(swap_attributes(model, x, y, y) - x).max()) < 1e-2
    True
    >>> swap_attributes(model, x, y, y[::-1]).shape
    (2, 8, 8, 1)
    """
    model = _check_conditional(model)
    images = as_numpy_batch(images, "images")
    labels = as_label_array(labels, model, len(images), "labels")
    new_labels = as_label_array(new_labels, model, len(images), "new_labels")
    latents = encode_in_batches(model, images, labels, batch_size)
    return decode_in_batches(model, latents, new_labels, batch_size)


def swap_grid(model, images, labels, candidate_labels, batch_size: int = 64, padding: int = 1) -> np.ndarray:
    """The picture: one row per image; its original, then the image decoded with each candidate label.

    Column 0 is the image itself; column `j + 1` is `g(f(x; y); c_j)` for the `j`-th
    row of `candidate_labels` (e.g. `one_hot(range(K), K)`: the image as every class).
    Pixel values are floored and clipped to [0, 255] for display only.

    Args:
        model: a conditional `RealNVP`.
        images: `(N, H, W, C)` pixel values in [0, 256).
        labels: `(N, K)` the images' own label vectors.
        candidate_labels: `(M, K)` label vectors to decode every image with.

    Returns:
        A uint8 picture with `N` rows and `M + 1` columns of tiles.

    Example:

    >>> from keras_realnvp import RealNVP
    >>> from keras_realnvp.experiments import one_hot
    >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1, label_dim=2)
    >>> x = np.random.default_rng(0).uniform(0, 256, (3, 8, 8, 1)).astype("float32")
    >>> swap_grid(model, x, one_hot([0, 1, 1], 2), one_hot([0, 1], 2)).shape
    (28, 28, 1)
    """
    model = _check_conditional(model)
    images = as_numpy_batch(images, "images")
    candidates = np.asarray(candidate_labels, dtype=model.compute_dtype)
    if candidates.ndim != 2 or candidates.shape[1] != model.label_dim or len(candidates) == 0:
        raise ValueError(
            f"candidate_labels must have shape (M, {model.label_dim}) with M >= 1, got {candidates.shape}."
        )
    labels = as_label_array(labels, model, len(images), "labels")
    latents = encode_in_batches(model, images, labels, batch_size)
    columns = [images.astype(np.float32)]
    for candidate in candidates:
        new_labels = np.broadcast_to(candidate, (len(images), model.label_dim))
        columns.append(decode_in_batches(model, latents, new_labels, batch_size))
    tiles = np.stack(columns, axis=1)
    return image_grid(tiles.reshape(-1, *tiles.shape[2:]), num_columns=len(columns), padding=padding)
