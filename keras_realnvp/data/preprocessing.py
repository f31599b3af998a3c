"""The paper's per-dataset image preprocessing (§4.1), on uint8 arrays.

- CelebA: the central 148x148 crop of the aligned 218x178 images (rows 40:188, columns
  15:163), resized to 64x64 by area averaging (PIL's BOX filter).
- LSUN: the shortest side resized to 96 (bicubic, aspect ratio kept), then a 64x64 crop:
  random in training, central for evaluation.
- Downsampled ImageNet and CIFAR-10: as they are.
- Horizontal flips in training where the preset says so.

Every image is converted to the preset's channel count first: grayscale or RGBA images in
an RGB dataset become RGB (`PIL.Image.convert`), which is the conversion the presets ask for.
"""

import numpy as np
from PIL import Image

CELEBA_SHAPE = (218, 178)
CELEBA_CROP = (slice(40, 188), slice(15, 163))
PREPROCESSINGS = ("none", "celeba", "lsun")


def to_array(image, channels: int = 3) -> np.ndarray:
    """A PIL image or array as a `(H, W, channels)` uint8 array (grayscale/RGBA converted).

    Example:

    >>> to_array(Image.new("L", (5, 4), color=7)).shape
    (4, 5, 3)
    """
    if not isinstance(image, Image.Image):
        array = np.asarray(image)
        if array.dtype != np.uint8:
            raise ValueError(f"Images must be uint8 pixels, got dtype {array.dtype}.")
        if array.ndim == 3 and array.shape[-1] == channels:
            return array
        image = Image.fromarray(array.squeeze(-1) if array.ndim == 3 and array.shape[-1] == 1 else array)
    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise ValueError(f"Only 1- or 3-channel images are supported, got channels={channels}.")
    array = np.asarray(image.convert(mode), dtype=np.uint8)
    return array[..., None] if channels == 1 else array


def celeba_crop(image: np.ndarray, size: int = 64) -> np.ndarray:
    """The paper's CelebA preprocessing: rows 40:188, columns 15:163, resized to `size`.

    Example:

    >>> celeba_crop(np.zeros((218, 178, 3), np.uint8)).shape
    (64, 64, 3)
    """
    if tuple(image.shape[:2]) != CELEBA_SHAPE:
        raise ValueError(
            f"CelebA preprocessing expects the aligned 218x178 images, got {image.shape[0]}x{image.shape[1]}."
        )
    crop = image[CELEBA_CROP]
    return _resize(crop, (size, size), Image.Resampling.BOX)


def lsun_resize_crop(image: np.ndarray, rng: np.random.Generator | None, size: int = 64, short_side: int = 96):
    """Shortest side to `short_side`, then a `size` x `size` crop (random with `rng`, else central).

    Example:

    >>> lsun_resize_crop(np.zeros((120, 200, 3), np.uint8), np.random.default_rng(0)).shape
    (64, 64, 3)
    """
    h, w = image.shape[:2]
    scale = short_side / min(h, w)
    new_h, new_w = max(short_side, round(h * scale)), max(short_side, round(w * scale))
    resized = _resize(image, (new_h, new_w), Image.Resampling.BICUBIC)
    top, left = crop_origin((new_h, new_w), size, rng)
    return resized[top : top + size, left : left + size]


def crop_origin(shape, size: int, rng: np.random.Generator | None) -> tuple[int, int]:
    """Top-left corner of a `size` crop of an image of `shape`: random with `rng`, else central.

    Example:

    >>> crop_origin((96, 128), 64, None)
    (16, 32)
    """
    h, w = shape
    if rng is None:
        return (h - size) // 2, (w - size) // 2
    return int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))


def _resize(image: np.ndarray, shape, resample) -> np.ndarray:
    squeeze = image.shape[-1] == 1
    pil = Image.fromarray(image[..., 0] if squeeze else image)
    out = np.asarray(pil.resize((shape[1], shape[0]), resample=resample), dtype=np.uint8)
    return out[..., None] if squeeze else out


def preprocess(image, preprocessing: str, image_shape, rng: np.random.Generator | None, flips: bool) -> np.ndarray:
    """Apply a preset's preprocessing to one image; `rng=None` means evaluation (no randomness).

    Example:

    >>> out = preprocess(np.zeros((218, 178, 3), np.uint8), "celeba", (64, 64, 3), None, flips=True)
    >>> out.shape, out.dtype
    ((64, 64, 3), dtype('uint8'))
    """
    if preprocessing not in PREPROCESSINGS:
        raise ValueError(f"Unknown preprocessing {preprocessing!r}; expected one of {PREPROCESSINGS}.")
    height, width, channels = image_shape
    array = to_array(image, channels)
    if preprocessing == "celeba":
        array = celeba_crop(array, height)
    elif preprocessing == "lsun":
        array = lsun_resize_crop(array, rng, size=height)
    if array.shape != tuple(image_shape):
        raise ValueError(
            f"An image of shape {array.shape} does not match the model's {tuple(image_shape)} after "
            f"preprocessing {preprocessing!r}."
        )
    if flips and rng is not None and rng.random() < 0.5:
        array = array[:, ::-1]
    return np.ascontiguousarray(array)
