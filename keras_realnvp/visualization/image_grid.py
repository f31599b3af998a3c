"""Tile a batch of images into one picture, and write it as a PNG."""

import math
import os
from pathlib import Path

import numpy as np
from keras import ops

from keras_realnvp.models.input_checks import check_count


def image_grid(images, num_columns: int | None = None, padding: int = 1) -> np.ndarray:
    """Tile `(N, H, W, C)` pixel values into one `(rows, columns)` grid image.

    Tiles are placed row by row, separated from each other and from the border by
    `padding` black pixels; cells after the last image stay black. Values are floored
    and clipped to [0, 255] and cast to uint8. The clipping is for display only:
    model samples may lie slightly outside [0, 256), and such values say nothing
    about the likelihood, so do not compute statistics on the returned array.

    Args:
        images: numpy array or backend tensor of shape `(N, H, W, C)`, `C` 1 or 3,
            with pixel values on the 0..255 scale (integers or floats).
        num_columns: tiles per row; default `ceil(sqrt(N))`.
        padding: pixels of black between tiles and around the grid.

    Returns:
        A uint8 array of shape `(rows * (H + padding) + padding,
        num_columns * (W + padding) + padding, C)`.

    Example:

    >>> import numpy as np
    >>> images = np.full((5, 2, 3, 1), 300.7)        # clipped to 255 for display
    >>> grid = image_grid(images, num_columns=3, padding=1)
    >>> grid.shape, grid.dtype, int(grid.max())
    ((7, 13, 1), dtype('uint8'), 255)
    >>> int(grid[1, 1, 0]), int(grid[0, 0, 0])          # a tile pixel, a padding pixel
    (255, 0)
    """
    images = ops.convert_to_numpy(images)
    if images.ndim != 4:
        raise ValueError(f"images must have rank 4, (N, height, width, channels); got shape {images.shape}.")
    count, height, width, channels = images.shape
    if count == 0 or height == 0 or width == 0:
        raise ValueError(f"images must be a non-empty batch of non-empty images, got shape {images.shape}.")
    if channels not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {channels} (shape {images.shape}).")
    if images.dtype == bool or not (np.issubdtype(images.dtype, np.number)):
        raise ValueError(f"images must hold numeric pixel values, got dtype {images.dtype}.")
    if not np.all(np.isfinite(images)):
        raise ValueError("images contain NaN or infinite values; nothing sensible can be displayed.")
    num_columns = math.ceil(math.sqrt(count)) if num_columns is None else check_count(num_columns, "num_columns")
    padding = check_count(padding, "padding", minimum=0)

    pixels = np.clip(np.floor(images.astype(np.float64)), 0, 255).astype(np.uint8)
    num_rows = math.ceil(count / num_columns)
    step_y, step_x = height + padding, width + padding
    grid = np.zeros((num_rows * step_y + padding, num_columns * step_x + padding, channels), np.uint8)
    for index, tile in enumerate(pixels):
        top = padding + (index // num_columns) * step_y
        left = padding + (index % num_columns) * step_x
        grid[top : top + height, left : left + width] = tile
    return grid


def save_image_grid(
    images, path: str | os.PathLike, num_columns: int | None = None, padding: int = 1, scale: int = 1
) -> Path:
    """Write `image_grid(images, num_columns, padding)` as a PNG, enlarged `scale` times.

    Each grid pixel becomes a `scale x scale` block (nearest neighbour), so that
    16x16 patches stay visible and are not blurred. Parent folders are created.
    Needs Pillow.

    Args:
        images: `(N, H, W, C)` pixel values, as for `image_grid`.
        path: where to write the PNG.
        num_columns: tiles per row; default `ceil(sqrt(N))`.
        padding: black pixels between tiles, before scaling.
        scale: integer enlargement factor, at least 1.

    Returns:
        The `pathlib.Path` written.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    >>> path = save_image_grid(images, os.path.join(tempfile.mkdtemp(), "grids", "g.png"), scale=2)
    >>> with Image.open(path) as picture:          # (width, height) = 2 * (2 * 17 + 1)
    ...     picture.size, picture.mode
    ((70, 70), 'RGB')
    """
    scale = check_count(scale, "scale")
    grid = image_grid(images, num_columns=num_columns, padding=padding)
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError("save_image_grid writes PNG files with Pillow: `pip install Pillow`.") from error
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    # Pillow infers "L" from a 2-D uint8 array and "RGB" from (H, W, 3).
    picture = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path, format="PNG")
    return path
