"""The embedded default dataset: patches of scikit-learn's two bundled sample photos.

scikit-learn ships `china.jpg` and `flower.jpg` (427 x 640 x 3) inside its wheel, so this
dataset works offline and needs no download. The right-most fifth of each photo's columns
is held out as the test region; train patches come only from the columns to its left, so
no test pixel is ever seen in training.
"""

import functools
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

SPLITS = ("train", "test")
# Fraction of each photo's width (right-most columns) reserved for the test split.
TEST_FRACTION = 0.2

# The dataset name of these patches in presets and on the command line (`--dataset embedded`).
EMBEDDED = "embedded"


@functools.lru_cache(maxsize=1)
def _photos():
    try:
        from sklearn.datasets import load_sample_images
    except ImportError as error:
        raise ImportError(
            "The embedded dataset is cut from scikit-learn's bundled sample photos; install it with "
            "`pip install keras-realnvp[embedded]` (or `pip install scikit-learn`)."
        ) from error
    # Sorted by file name so the patch order never depends on the file system.
    bunch = load_sample_images()
    pairs = sorted(zip(bunch.filenames, bunch.images, strict=True), key=lambda pair: pair[0])
    photos = tuple(np.ascontiguousarray(image, dtype=np.uint8) for _, image in pairs)
    for photo in photos:
        photo.setflags(write=False)
    return photos


def _check_arguments(split, patch_size, width):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    if isinstance(patch_size, bool) or not isinstance(patch_size, (int, np.integer)):
        raise ValueError(f"patch_size must be a positive even integer, got {patch_size!r}.")
    if patch_size <= 0 or patch_size % 2:
        raise ValueError(
            f"patch_size must be a positive even integer (train patches overlap by half), got {patch_size}."
        )
    largest = int(width * TEST_FRACTION)
    if patch_size > largest:
        raise ValueError(
            f"patch_size {patch_size} is too large: the test region of the {width}-pixel-wide photos is "
            f"{largest} columns wide, so patch_size must be at most {largest - largest % 2}."
        )


def _test_start(width, patch_size):
    # A whole number of test patches fits the test region exactly, so the test patches
    # tile it without overlap and the train region ends where the first of them begins.
    return width - (int(width * TEST_FRACTION) // patch_size) * patch_size


def embedded_patch_origins(split: str = "train", patch_size: int = 16) -> np.ndarray:
    """Where each patch of `load_embedded_patches(split, patch_size)` was cut.

    Returns an integer array of shape `(N, 3)`: `(photo, row, column)` of each patch's
    top-left pixel, in the order of `load_embedded_patches`. Photos are numbered in the
    order of their file names (0: `china.jpg`, 1: `flower.jpg`).

    Example:

    >>> origins = embedded_patch_origins("test", patch_size=16)
    >>> origins.shape
    (416, 3)
    >>> [int(v) for v in origins[0]]
    [0, 0, 512]
    """
    photos = _photos()
    height, width = photos[0].shape[:2]
    _check_arguments(split, patch_size, width)
    test_start = _test_start(width, patch_size)
    if split == "train":
        stride, first_column, last_column = patch_size // 2, 0, test_start - patch_size
    else:
        stride, first_column, last_column = patch_size, test_start, width - patch_size
    rows = np.arange(0, height - patch_size + 1, stride)
    columns = np.arange(first_column, last_column + 1, stride)
    origins = [(p, r, c) for p in range(len(photos)) for r in rows for c in columns]
    return np.asarray(origins, dtype=np.int64).reshape(-1, 3)


def load_embedded_patches(split: str = "train", patch_size: int = 16) -> np.ndarray:
    """Square RGB patches of two real photos, as uint8 pixels: the package's default dataset.

    The photos are scikit-learn's bundled `china.jpg` and `flower.jpg`. The right-most
    fifth of each photo's columns (rounded down to whole patches) is the test region,
    tiled by non-overlapping patches; the train patches overlap by half (stride
    `patch_size // 2`) and lie entirely left of it. For `patch_size=16` that is 6552
    train and 416 test patches. Deterministic: the same call returns the same array.

    Args:
        split: `"train"` or `"test"`.
        patch_size: side of the square patches; a positive even integer, at most
            the width of the test region (128).

    Returns:
        A uint8 array of shape `(N, patch_size, patch_size, 3)`.

    Raises:
        ImportError: scikit-learn is missing (`pip install keras-realnvp[embedded]`).
        ValueError: unknown `split` or an unusable `patch_size`.

    Example:

    >>> train = load_embedded_patches("train")
    >>> train.shape, train.dtype
    ((6552, 16, 16, 3), dtype('uint8'))
    >>> load_embedded_patches("test", patch_size=32).shape
    (104, 32, 32, 3)
    """
    origins = embedded_patch_origins(split, patch_size)
    photos = _photos()
    return np.stack([photos[p][r : r + patch_size, c : c + patch_size] for p, r, c in origins])


def dequantize_numpy(pixels: ArrayLike, seed: int | Sequence[int]) -> np.ndarray:
    """`pixels + u`, `u ~ U[0, 1)` drawn by a numpy Generator: reproducible held-out evaluation.

    The model dequantizes integer pixels itself during training with its own
    generator; held-out bits/dim are instead computed on one fixed dequantization,
    so that numbers from different runs and backends are comparable.

    Args:
        pixels: integer array with values 0..255.
        seed: seed of `numpy.random.default_rng` (an int or a sequence of ints).

    Returns:
        A float32 array of the same shape with values in [0, 256).

    Example:

    >>> import numpy as np
    >>> x = dequantize_numpy(np.array([0, 17, 255], dtype="uint8"), seed=0)
    >>> x.dtype, bool(np.all((x >= [0, 17, 255]) & (x < [1, 18, 256])))
    (dtype('float32'), True)
    """
    pixels = np.asarray(pixels)
    if not np.issubdtype(pixels.dtype, np.integer):
        raise ValueError(f"pixels must be integers 0..255 (not yet dequantized), got dtype {pixels.dtype}.")
    if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
        raise ValueError(f"pixels must lie in 0..255, got values in [{pixels.min()}, {pixels.max()}].")
    base = pixels.astype(np.float32)
    noise = np.random.default_rng(seed).random(pixels.shape, dtype=np.float32)
    # In float32, 255 + (1 - 2^-24) rounds up to 256.0, outside the model's [0, 256):
    # keep every value strictly below the next integer.
    return np.minimum(base + noise, np.nextafter(base + 1, np.float32(0)))
