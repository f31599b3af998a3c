"""The paper's per-dataset image preprocessing (§4.1), on uint8 arrays.

- CelebA: the central 148x148 crop of the aligned 218x178 images (rows 40:188, columns
  15:163), resized to 64x64 by area averaging (PIL's BOX filter).
- LSUN: the shortest side resized to 96 (bicubic, aspect ratio kept), then a 64x64 crop:
  random in training, central for evaluation.
- Downsampled ImageNet and CIFAR-10: as they are.
- Horizontal flips in training where the preset says so.

Every image is converted to the preset's 8-bit channel count first (`to_array`):

- grayscale (`L`, `1`, `P`), palette, CMYK, YCbCr, LAB and HSV images become RGB with
  `PIL.Image.convert` (grayscale: the value in all three channels);
- an alpha channel (RGBA, LA, PA, premultiplied RGBa / La) is dropped: the color values
  are kept as stored, not composited onto a background;
- 16-bit images (`I;16*`, and `I` with values in 0..65535, which older Pillow versions
  give for 16-bit PNGs) are scaled to 8 bits (`round(v / 257)`);
- for a 1-channel model, color images become grayscale with PIL's luminance
  (`L = R * 299/1000 + G * 587/1000 + B * 114/1000`);
- 32-bit float images (`F`) and other modes have no defined 8-bit pixel scale and raise
  a `ValueError`, as do arrays of other dtypes than uint8 / uint16 or with more than 4
  channels. Images read from a folder or a Hub dataset carry their file name (or row)
  into every such error.
"""

import numpy as np
from PIL import Image

CELEBA_SHAPE = (218, 178)
CELEBA_CROP = (slice(40, 188), slice(15, 163))
PREPROCESSINGS = ("none", "celeba", "lsun")


_SOURCE_KEY = "keras_realnvp_source"  # set by the image sources: where an image came from
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
_ARRAY_MODES = {2: "L", 3: {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}}


def image_origin(image) -> str | None:
    """The file name (or row) an image source recorded on a PIL image, if any.

    Example:

    >>> image = Image.new("RGB", (2, 2))
    >>> image.info["keras_realnvp_source"] = "photos/cat.png"
    >>> image_origin(image), image_origin(np.zeros((2, 2, 3), np.uint8))
    ('photos/cat.png', None)
    """
    return image.info.get(_SOURCE_KEY) if isinstance(image, Image.Image) else None


def _sixteen_to_eight(values) -> np.ndarray:
    return np.round(np.asarray(values, dtype=np.float64) / 257.0).astype(np.uint8)


def _from_array(array) -> Image.Image:
    if array.dtype == np.uint16:
        array = _sixteen_to_eight(array)
    elif array.dtype != np.uint8:
        raise ValueError(f"Images must be uint8 (or 16-bit uint16) pixels, got dtype {array.dtype}.")
    if array.ndim == 3 and array.shape[-1] in _ARRAY_MODES[3]:
        mode = _ARRAY_MODES[3][array.shape[-1]]
        return Image.fromarray(array[..., 0] if mode == "L" else np.ascontiguousarray(array), mode)
    if array.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(array), "L")
    raise ValueError(
        f"Images must be (height, width) or (height, width, channels) with 1 to 4 channels, got shape {array.shape}."
    )


def _eight_bit(image: Image.Image) -> Image.Image:
    """`image` in a mode with 8 bits per channel that `convert` can take to L and RGB."""
    if image.mode in _SIXTEEN_BIT_MODES:
        return Image.fromarray(_sixteen_to_eight(np.asarray(image)), "L")
    if image.mode == "I":
        values = np.asarray(image)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(
                f"A 32-bit integer image (mode I) with values in [{values.min()}, {values.max()}] has no 8-bit pixel "
                "scale; convert it to 8 bits per channel first."
            )
        return Image.fromarray(_sixteen_to_eight(values), "L")
    if image.mode in ("La", "RGBa"):  # premultiplied alpha: un-premultiply, then drop alpha below
        return image.convert("LA" if image.mode == "La" else "RGBA")
    if image.mode == "F":
        raise ValueError(
            "A 32-bit float image (mode F) has no 8-bit pixel scale; convert it to 8 bits per channel first."
        )
    return image


def to_array(image, channels: int = 3) -> np.ndarray:
    """A PIL image or array as a `(H, W, channels)` uint8 array, converted as the module says.

    Example:

    >>> to_array(Image.new("L", (5, 4), color=7)).shape
    (4, 5, 3)
    >>> to_array(Image.new("RGBA", (2, 2), color=(10, 20, 30, 0)))[0, 0].tolist()  # alpha dropped
    [10, 20, 30]
    >>> int(to_array(np.full((2, 2), 65535, np.uint16), channels=1)[0, 0, 0])  # 16 bits scaled to 8
    255
    """
    if channels not in (1, 3):
        raise ValueError(f"Only 1- or 3-channel images are supported, got channels={channels}.")
    if not isinstance(image, Image.Image):
        array = np.asarray(image)
        if array.dtype == np.uint8 and array.ndim == 3 and array.shape[-1] == channels:
            return array
        image = _from_array(array)
    mode = "L" if channels == 1 else "RGB"
    original = image.mode
    try:
        array = np.asarray(_eight_bit(image).convert(mode), dtype=np.uint8)
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot convert an image of mode {original} to {mode}: {error}") from None
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
    origin = image_origin(image)
    try:
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
    except ValueError as error:
        if origin is None:
            raise
        raise ValueError(f"Image {origin}: {error}") from None
    if flips and rng is not None and rng.random() < 0.5:
        array = array[:, ::-1]
    return np.ascontiguousarray(array)
