"""The latent manifold of eq. 19 (figure 6): four images' latents on a 2-D torus of angles."""

import math

import numpy as np

from keras_realnvp.experiments._common import (
    as_numpy_batch,
    check_model,
    check_positive_int,
    decode_in_batches,
    encode_in_batches,
)
from keras_realnvp.visualization.image_grid import image_grid

_QUARTER_TURNS = ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))


def manifold_angles(num_steps: int) -> np.ndarray:
    """`(cos, sin)` of the angles `2 pi k / num_steps`, `k = 0 .. num_steps - 1`, shape `(num_steps, 2)`.

    Multiples of a quarter turn get exact values (`cos(pi / 2)` is 0, not 6e-17), so
    the cells of `manifold` that are the four images decode their latents unchanged.

    Example:

    >>> manifold_angles(4).tolist()
    [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]
    """
    num_steps = check_positive_int(num_steps, "num_steps")
    values = []
    for k in range(num_steps):
        if (4 * k) % num_steps == 0:
            values.append(_QUARTER_TURNS[(4 * k) // num_steps])
        else:
            angle = 2.0 * math.pi * k / num_steps
            values.append((math.cos(angle), math.sin(angle)))
    return np.array(values)


def manifold_image_cells(num_steps: int) -> dict:
    """Which cells `(row, column)` of `manifold(..., num_steps)` are the four images themselves.

    Row `i` has `phi = 2 pi i / n`, column `j` has `phi' = 2 pi j / n`. Cell `(0, 0)`
    is `z1` (image 0) for every `n`; when `n` is divisible by 4, `phi' = pi / 2` gives
    `(0, n/4) = z2`, `phi = pi / 2` gives `(n/4, 0) = z3`, and `(n/4, n/4) = z4`.
    (Cells at half turns are the negated latents `-z_k`, which are not the images.)

    Returns:
        `{(row, column): image index}`.

    Example:

    >>> manifold_image_cells(8)
    {(0, 0): 0, (0, 2): 1, (2, 0): 2, (2, 2): 3}
    >>> manifold_image_cells(6)
    {(0, 0): 0}
    """
    num_steps = check_positive_int(num_steps, "num_steps")
    if num_steps % 4:
        return {(0, 0): 0}
    q = num_steps // 4
    return {(0, 0): 0, (0, q): 1, (q, 0): 2, (q, q): 3}


def manifold_latents(latents, num_steps: int = 8) -> list:
    """Eq. 19 on latents: `z = cos(phi)(cos(phi') z1 + sin(phi') z2) + sin(phi)(cos(phi') z3 + sin(phi') z4)`.

    Args:
        latents: one array per scale, each with a leading axis of 4 (`z1 .. z4`), as
            `model.encode` returns for four images.
        num_steps: `n`, the number of angles on each axis.

    Returns:
        One numpy array per scale with a leading axis of `n * n`, row-major over
        `(phi, phi')`: entry `i * n + j` has `phi = 2 pi i / n`, `phi' = 2 pi j / n`.

    Example:

    >>> z = [np.array([[1.0], [2.0], [3.0], [4.0]])]                       # z1..z4, one unit each
    >>> manifold_latents(z, num_steps=4)[0][:, 0].reshape(4, 4).tolist()
    [[1.0, 2.0, -1.0, -2.0], [3.0, 4.0, -3.0, -4.0], [-1.0, -2.0, 1.0, 2.0], [-3.0, -4.0, 3.0, 4.0]]
    """
    angles = manifold_angles(num_steps)
    cos, sin = angles[:, 0], angles[:, 1]
    # weights[i, j, k] multiplies z_{k+1} in cell (i, j).
    weights = np.stack(
        [
            np.outer(cos, cos),
            np.outer(cos, sin),
            np.outer(sin, cos),
            np.outer(sin, sin),
        ],
        axis=-1,
    ).reshape(num_steps * num_steps, 4)
    result = []
    for i, z in enumerate(latents):
        z = np.asarray(z)
        if z.shape[0] != 4:
            raise ValueError(f"latents[{i}] must hold 4 examples (z1..z4), got shape {z.shape}.")
        flat = z.reshape(4, -1)
        # A sum of products, term by term, so that a cell whose weights are (1, 0, 0, 0)
        # gives z1 bit for bit.
        mixed = sum(weights[:, k : k + 1] * flat[k][None, :] for k in range(4))
        result.append(mixed.astype(z.dtype).reshape(num_steps * num_steps, *z.shape[1:]))
    return result


def manifold(model, images, num_steps: int = 8, batch_size: int = 64) -> np.ndarray:
    """The `n x n` grid of eq. 19 from four images, decoded: figure 6.

    Encodes the four images to `z1 .. z4`, forms `manifold_latents` and decodes every
    cell. Cell `(i, j)` has `phi = 2 pi i / n`, `phi' = 2 pi j / n`; the cells that are
    the images themselves are `manifold_image_cells(n)` (`(0, 0)` always; all four when
    `n` is divisible by 4, e.g. the paper's `n = 8`), and they reproduce the images up
    to the flow's round-trip error.

    Nothing is clipped: interpolated latents may decode a little outside [0, 256),
    into the logit's preimage (about [-14.2, 270.2) for alpha = 0.05). Only
    `manifold_grid`, the picture, clips (for display).

    Args:
        model: an unconditional `RealNVP`.
        images: four images `(4, H, W, C)`, pixel values in [0, 256).
        num_steps: `n`, angles per axis (the paper: 8).
        batch_size: images decoded at a time.

    Returns:
        A float32 numpy array `(n, n, H, W, C)`.

    Example:

    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
    >>> images = np.random.default_rng(0).uniform(0, 256, (4, 8, 8, 1)).astype("float32")
    >>> grid = manifold(model, images, num_steps=4)
    >>> grid.shape
    (4, 4, 8, 8, 1)
    >>> float(np.abs(grid[1, 1] - images[3]).max()) < 1e-2                  # cell (n/4, n/4) is z4
    True
    """
    model = check_model(model)
    if model.label_dim is not None:
        raise ValueError(
            "manifold takes an unconditional model; for a conditional one, encode with labels, "
            "mix the latents with manifold_latents and decode with the labels you want."
        )
    num_steps = check_positive_int(num_steps, "num_steps")
    images = as_numpy_batch(images, "images")
    if len(images) != 4:
        raise ValueError(f"manifold takes exactly 4 images (z1..z4 of eq. 19), got {len(images)}.")
    latents = encode_in_batches(model, images, batch_size=batch_size)
    mixed = manifold_latents(latents, num_steps)
    decoded = decode_in_batches(model, mixed, batch_size=batch_size)
    return decoded.reshape(num_steps, num_steps, *decoded.shape[1:])


def manifold_grid(model, images, num_steps: int = 8, batch_size: int = 64, padding: int = 1) -> np.ndarray:
    """The picture of `manifold`: `n x n` tiles, row `i` at `phi = 2 pi i / n`, column `j` at `phi'`.

    This is the one place where the manifold's pixel values are clipped: floored and
    clipped to [0, 255] for display (`visualization.image_grid`).

    Returns:
        A uint8 picture `(n * (H + padding) + padding, n * (W + padding) + padding, C)`.

    Example:

    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
    >>> images = np.random.default_rng(0).uniform(0, 256, (4, 8, 8, 1)).astype("float32")
    >>> manifold_grid(model, images, num_steps=4).shape
    (37, 37, 1)
    """
    cells = manifold(model, images, num_steps, batch_size)
    return image_grid(cells.reshape(-1, *cells.shape[2:]), num_columns=num_steps, padding=padding)
