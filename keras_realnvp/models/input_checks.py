"""Early, specific checks of what users pass to the model's public methods."""

import keras
import numpy as np
from keras import ops

_REAL_KINDS = ("int", "uint", "float", "bfloat")


def _dtype_name(x):
    return keras.backend.standardize_dtype(x.dtype)


def as_array(x, what):
    """`x` itself if it has a shape and dtype, else `np.asarray(x)`; rejects non-numbers."""
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{what} must be a numeric array, got {type(x).__name__}: {error}") from None
    try:
        dtype = _dtype_name(x)
    except ValueError:
        dtype = str(x.dtype)
    if not dtype.startswith(_REAL_KINDS):
        raise ValueError(f"{what} must have an integer or floating dtype, got {dtype}.")
    return x


def check_finite_in_range(x, what, low, high, high_inclusive=False):
    """Raise a `ValueError` if `x` has NaN/inf or values outside [low, high)."""
    if _dtype_name(x).startswith(("float", "bfloat")):
        finite = bool(ops.convert_to_numpy(ops.all(ops.isfinite(x))))
        if not finite:
            raise ValueError(f"{what} contains NaN or infinite values.")
    if low is None:
        return
    lo = float(ops.convert_to_numpy(ops.min(x)))
    hi = float(ops.convert_to_numpy(ops.max(x)))
    above = hi > high if high_inclusive else hi >= high
    if lo < low or above:
        bracket = "]" if high_inclusive else ")"
        raise ValueError(
            f"{what} must lie in [{low:g}, {high:g}{bracket}, got values in [{lo:g}, {hi:g}]. "
            "Pass pixel values (integers 0..255, or dequantized floats in [0, 256)), not "
            "images rescaled to [0, 1] or [-1, 1]."
        )


def check_images(x, channels, multiple, min_size, what="images"):
    """Validate a batch of images `(N, H, W, C)` with values in [0, 256); returns it."""
    x = as_array(x, what)
    shape = tuple(x.shape)
    if len(shape) != 4:
        raise ValueError(f"{what} must have rank 4, (batch, height, width, channels); got shape {shape}.")
    n, h, w, c = shape
    if n == 0:
        raise ValueError(f"{what} is an empty batch (shape {shape}).")
    if c != channels:
        raise ValueError(f"{what} have {c} channels but the model was built for {channels}; got shape {shape}.")
    for name, size in (("height", h), ("width", w)):
        if size % multiple:
            raise ValueError(
                f"{what} {name} {size} is not divisible by {multiple} "
                f"(2^(num_scales - 1), needed by the squeezes); got shape {shape}."
            )
        if size < min_size:
            raise ValueError(f"{what} {name} {size} is smaller than this model allows ({min_size}); got shape {shape}.")
    check_finite_in_range(x, what, 0.0, 256.0)
    return x


def check_labels(labels, condition_dim, batch_size, what="labels"):
    """Validate the label vectors of a conditional model; `None` for unconditional ones."""
    if condition_dim is None:
        if labels is not None:
            raise ValueError("This model is not conditional (condition_dim=None) but labels were given.")
        return None
    if labels is None:
        raise ValueError(f"This model is conditional: pass {what} of shape (batch, {condition_dim}).")
    labels = as_array(labels, what)
    shape = tuple(labels.shape)
    if shape != (batch_size, condition_dim):
        raise ValueError(f"{what} must have shape ({batch_size}, {condition_dim}), got {shape}.")
    check_finite_in_range(labels, what, None, None)
    return labels
