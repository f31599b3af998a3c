"""Early, specific checks of what users pass to the model's public methods.

Shapes and dtypes are checked on every call. Values (finite, within a range) are checked
wherever they exist, which includes calls under `jax.grad`, a `tf.GradientTape` and PyTorch
autograd; inside a caller's `jax.jit` or `jax.vmap`, or a `tf.function`, traced inputs have
no values yet, and only their value checks are skipped (`check_finite_in_range`). A dimension
a trace leaves unknown (`None`, e.g. the batch of a `tf.function` input signature) matches
any size.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_realnvp.backend.compiled import concrete_value, evaluating_now
from keras_realnvp.models.scales import scale_shapes, spatial_rule

_REAL_KINDS = ("int", "uint", "float", "bfloat")


def _same_shape(got, expected):
    """`got == expected`, where a `None` (a dimension a trace leaves unknown) matches any size."""
    return len(got) == len(expected) and all(a is None or b is None or a == b for a, b in zip(got, expected))


def _dtype_name(x):
    return keras.backend.standardize_dtype(x.dtype)


def as_array(x, what):
    """`x` itself if it has a shape and dtype, else `np.asarray(x)`; rejects non-numbers.

    Tensors (also tracers and tensors that require grad) are returned as they are, so a
    caller's gradient still reaches them.

    Example:

    >>> as_array([[1, 2]], "images").shape
    (1, 2)
    >>> as_array([["a"]], "images")
    Traceback (most recent call last):
    ...
    ValueError: images must have an integer or floating dtype, got <U1.
    """
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
    """Raise a `ValueError` if `x` has NaN/inf or values outside [low, high) (`low=None`: finite only).

    The check reads values, so it runs wherever they exist: on arrays and eager tensors,
    and under `jax.grad`, a `tf.GradientTape` or PyTorch autograd (without recording
    anything for the gradient). A traced `x` inside a caller's `jax.jit` or `jax.vmap`, or a
    `tf.function`, has no values yet (`keras_realnvp.backend.compiled.concrete_value`): there the
    check is skipped, and NaN or out-of-range input gives whatever the model computes from it.

    Example:

    >>> import numpy as np
    >>> check_finite_in_range(np.array([0.0, 255.5]), "images", 0.0, 256.0)
    >>> check_finite_in_range(np.array([1.0, np.nan]), "labels", None, None)
    Traceback (most recent call last):
    ...
    ValueError: labels contains NaN or infinite values.
    """
    values = concrete_value(x)
    if values is None:
        return
    # At once even inside a caller's trace (a concrete array closed over by jax.jit), and
    # off the autograd graph of a caller who differentiates.
    with evaluating_now():
        _check_values(values, what, low, high, high_inclusive)


def _check_values(x, what, low, high, high_inclusive):
    # bool() and float() of the scalar results, not convert_to_numpy: they also read the tensors
    # of torch.func.grad, whose storage numpy cannot see.
    if _dtype_name(x).startswith(("float", "bfloat")):
        finite = bool(ops.all(ops.isfinite(x)))
        if not finite:
            raise ValueError(f"{what} contains NaN or infinite values.")
    if low is None:
        return
    lo = float(ops.min(x))
    hi = float(ops.max(x))
    above = hi > high if high_inclusive else hi >= high
    if lo < low or above:
        bracket = "]" if high_inclusive else ")"
        raise ValueError(
            f"{what} must lie in [{low:g}, {high:g}{bracket}, got values in [{lo:g}, {hi:g}]. "
            "Pass pixel values (integers 0..255, or dequantized floats in [0, 256)), not "
            "images rescaled to [0, 1] or [-1, 1]."
        )


def check_images(x, channels, multiple, min_size, what="images"):
    """Validate a batch of images `(N, H, W, C)` with values in [0, 256); returns it.

    The shape and dtype are checked on every call; the values wherever they exist (see
    `check_finite_in_range`: not for a traced `x` inside `jax.jit`, `jax.vmap` or a
    `tf.function`). An unknown (`None`) batch, height or width of a traced `x` is accepted.

    Example:

    >>> import numpy as np
    >>> check_images(np.full((2, 8, 8, 3), 7.5), channels=3, multiple=2, min_size=4).shape
    (2, 8, 8, 3)
    >>> check_images(np.full((2, 8, 8, 3), 7.5), channels=1, multiple=2, min_size=4)
    Traceback (most recent call last):
    ...
    ValueError: images have 3 channels but the model was built for 1; got shape (2, 8, 8, 3).
    """
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
        if size is None:  # left unknown by a caller's trace: the squeezes will see the real size
            continue
        if size % multiple:
            raise ValueError(
                f"{what} {name} {size} is not divisible by {multiple} "
                f"(2^(num_scales - 1), needed by the squeezes); got shape {shape}."
            )
        if size < min_size:
            raise ValueError(f"{what} {name} {size} is smaller than this model allows ({min_size}); got shape {shape}.")
    check_finite_in_range(x, what, 0.0, 256.0)
    return x


def check_labels(labels, label_dim, batch_size, what="labels"):
    """Validate the label vectors of a conditional model; `None` for unconditional ones.

    Values are checked (finite) wherever they exist, as in `check_finite_in_range`.

    Example:

    >>> import numpy as np
    >>> check_labels(np.eye(2), label_dim=2, batch_size=2).shape
    (2, 2)
    >>> check_labels(np.eye(2), label_dim=3, batch_size=2)
    Traceback (most recent call last):
    ...
    ValueError: labels must have shape (2, 3), got (2, 2).
    """
    if label_dim is None:
        if labels is not None:
            raise ValueError("This model is not conditional (label_dim=None) but labels were given.")
        return None
    if labels is None:
        raise ValueError(f"This model is conditional: pass {what} of shape (batch, {label_dim}).")
    labels = as_array(labels, what)
    shape = tuple(labels.shape)
    if not _same_shape(shape, (batch_size, label_dim)):
        raise ValueError(f"{what} must have shape ({batch_size}, {label_dim}), got {shape}.")
    check_finite_in_range(labels, what, None, None)
    return labels


def _describe(value):
    """`value` for an error message: its repr if short, else its type (and shape for arrays)."""
    if hasattr(value, "shape") and getattr(value, "ndim", None) != 0:
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    text = repr(value)
    return text if len(text) <= 60 else f"a {type(value).__name__}"


def is_integer_scalar(value):
    """True for a Python or NumPy integer, false for bools (`True` is not a count) and everything else.

    Example:

    >>> import numpy as np
    >>> [is_integer_scalar(v) for v in (3, np.int64(3), True, 3.0, "3", np.array([3]))]
    [True, True, False, False, False, False]
    """
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_count(value, name, minimum=1):
    """`value` as a Python int if it is an integer >= `minimum`, else a `ValueError` naming `name`.

    Python and NumPy integers are accepted; floats (even `2.0`: a count is never a
    float), bools, strings and arrays are not, since `int()` would silently truncate
    or reinterpret them.

    Example:

    >>> import numpy as np
    >>> check_count(np.int32(3), "num_samples")
    3
    >>> check_count(1.7, "num_samples")
    Traceback (most recent call last):
    ...
    ValueError: num_samples must be a positive integer, got 1.7.
    """
    wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if not is_integer_scalar(value) or value < minimum:
        raise ValueError(f"{name} must be {wanted}, got {_describe(value)}.")
    return int(value)


def check_temperature(value, name="temperature"):
    """`value` as a float if it is a finite real number >= 0 (a standard deviation), else a `ValueError`.

    Python and NumPy real scalars are accepted; bools, strings, arrays and tensors are
    not (an array would broadcast into the draw instead of scaling it).

    Example:

    >>> check_temperature(0.7)
    0.7
    >>> check_temperature("1")
    Traceback (most recent call last):
    ...
    ValueError: temperature must be a real number (the prior's standard deviation), got '1'.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number (the prior's standard deviation), got {_describe(value)}.")
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value}.")
    return value


def check_image_shape(value, what="image_shape"):
    """`value` as a tuple of three Python ints `(height, width, channels)`, each >= 1, else a `ValueError`.

    Lists, tuples and 1-D NumPy arrays of Python or NumPy integers are accepted.

    Example:

    >>> check_image_shape([32, 32, 3])
    (32, 32, 3)
    >>> check_image_shape((16, 16))
    Traceback (most recent call last):
    ...
    ValueError: image_shape must be (height, width, channels), three positive integers; got (16, 16).
    """
    sequence = isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim == 1)
    entries = list(value) if sequence else None
    if entries is None or len(entries) != 3 or not all(is_integer_scalar(d) and d >= 1 for d in entries):
        shown = tuple(entries) if entries is not None else value
        raise ValueError(
            f"{what} must be (height, width, channels), three positive integers; got {_describe(shown)}."
        )
    return tuple(int(d) for d in entries)


def check_vectors(x, dim, what="points"):
    """Validate a batch of vectors `(N, dim)` with finite values (`RealNVP2D`'s points and latents); returns it.

    The shape and dtype are checked on every call, the values wherever they exist (see
    `check_finite_in_range`); tensors are returned as they are.

    Example:

    >>> import numpy as np
    >>> check_vectors(np.zeros((3, 2)), dim=2).shape
    (3, 2)
    >>> check_vectors(np.zeros((3, 4)), dim=2, what="latents")
    Traceback (most recent call last):
    ...
    ValueError: latents must have shape (batch, 2), got (3, 4).
    """
    x = as_array(x, what)
    if len(x.shape) != 2 or x.shape[-1] != dim:
        raise ValueError(f"{what} must have shape (batch, {dim}), got {tuple(x.shape)}.")
    if x.shape[0] == 0:
        raise ValueError(f"{what} is an empty batch.")
    check_finite_in_range(x, what, None, None)
    return x


def check_latent_list(latents, num_scales, channels, what="latents"):
    """Check a multi-scale model's latents (as `encode` returns them) and return them as arrays.

    `latents` must be a list of `num_scales` finite arrays or tensors, finest scale first, with one
    batch size: `latents[0]` is `(batch, h, w, 2 * channels)` (`(batch, h, w, channels)`
    when `num_scales` is 1); each next one halves `h` and `w` and doubles the channels,
    and the last has the same shape as the one before it. So `h` and `w` must be
    multiples of `2^(num_scales - 2)` and the last latent at least 2x2. Every error
    states the expected shapes in terms of the latents. Shapes are checked on every call,
    values (finite) wherever they exist (`check_finite_in_range`); latents that require grad
    or are traced are returned as they are.

    Example:

    >>> import numpy as np
    >>> z = [np.zeros((2, 8, 8, 6)), np.zeros((2, 4, 4, 12)), np.zeros((2, 4, 4, 12))]
    >>> [a.shape for a in check_latent_list(z, num_scales=3, channels=3)]
    [(2, 8, 8, 6), (2, 4, 4, 12), (2, 4, 4, 12)]
    >>> check_latent_list(z[:2], num_scales=3, channels=3)
    Traceback (most recent call last):
    ...
    ValueError: latents must be a list of 3 tensors (one per scale, finest first), got a list of 2.
    """
    if not isinstance(latents, (list, tuple)) or len(latents) != num_scales:
        is_list = isinstance(latents, (list, tuple))
        got = f"a {type(latents).__name__} of {len(latents)}" if is_list else _describe(latents)
        raise ValueError(f"{what} must be a list of {num_scales} tensors (one per scale, finest first), got {got}.")
    arrays = [as_array(z, f"{what}[{i}]") for i, z in enumerate(latents)]
    # The latents of images (h0, w0, channels): latents[0] is the first scale's, so the rule
    # for its h and w is the image rule of a model with one scale fewer (at least one).
    first_channels = channels if num_scales == 1 else 2 * channels
    multiple, minimum = spatial_rule(max(num_scales - 1, 1))

    def expected(h, w):
        image = (h, w, channels) if num_scales == 1 else (2 * h, 2 * w, channels)
        return [s.latent_shape for s in scale_shapes(image, num_scales)]

    rule = (
        f"for this model (num_scales={num_scales}, {channels} image channels) {what}[0] must be "
        f"(batch, h, w, {first_channels}) with h and w multiples of {multiple} and at least {minimum}"
    )
    if num_scales > 1:
        rule += ", each next latent halving h and w and doubling the channels, the last one the same as the one before"
    first = tuple(arrays[0].shape)
    if len(first) != 4:
        raise ValueError(f"{what}[0] must have rank 4, got shape {first}; {rule}.")
    batch, h, w, c = first
    if batch == 0:
        raise ValueError(f"{what} is an empty batch ({what}[0] has shape {first}).")
    if h is None or w is None:  # left unknown by a caller's trace: nothing to compare the others with
        raise ValueError(f"{what}[0] must have a known height and width, got shape {first}; {rule}.")
    if c != first_channels or h % multiple or w % multiple or min(h, w) < minimum:
        raise ValueError(f"{what}[0] has shape {first}; {rule}.")
    shapes = expected(h, w)
    for i, (z, shape) in enumerate(zip(arrays, shapes)):
        if not _same_shape(tuple(z.shape), (batch, *shape)):
            listed = ", ".join(str((batch, *s)) for s in shapes)
            raise ValueError(
                f"{what}[{i}] has shape {tuple(z.shape)}, expected {(batch, *shape)}: after {what}[0] of shape "
                f"{first} the latents of this model are [{listed}]."
            )
        check_finite_in_range(z, f"{what}[{i}]", None, None)
    return arrays
