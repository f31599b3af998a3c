"""The binary masks of section 3.3: spatial checkerboard and channel-wise.

Images (`(N, H, W, C)`) use the spatial checkerboard; vectors (`(N, D)`, the 2-D toy of
figure 1) use its one-dimensional analogue, `parity_mask`, over the feature index. The
channel mask is the same for both: halves of the last axis.
"""

from keras import ops

MASK_TYPES = ("checkerboard", "channel")


def checkerboard_mask(height, width, reverse=False, dtype="float32"):
    """A `(height, width, 1)` mask, 1 where `row + col` is odd (0 there if `reverse`).

    Built from the shape with `keras.ops`, so it works for any image size
    (extrapolation) and is a constant under compilation.

    Example:

    >>> import numpy as np
    >>> np.asarray(checkerboard_mask(2, 3))[..., 0].tolist()
    [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]
    """
    rows = ops.arange(height)[:, None]
    cols = ops.arange(width)[None, :]
    odd = ops.equal(ops.mod(rows + cols, 2), 0 if reverse else 1)
    return ops.cast(odd, dtype)[:, :, None]


def parity_mask(size, reverse=False, dtype="float32"):
    """A `(size,)` mask over vector features, 1 where the index is odd (0 there if `reverse`).

    The checkerboard of a rank-2 input `(batch, features)`: alternating feature parity.

    Example:

    >>> import numpy as np
    >>> np.asarray(parity_mask(5)).tolist(), np.asarray(parity_mask(2, reverse=True)).tolist()
    ([0.0, 1.0, 0.0, 1.0, 0.0], [1.0, 0.0])
    """
    odd = ops.equal(ops.mod(ops.arange(size), 2), 0 if reverse else 1)
    return ops.cast(odd, dtype)


def channel_halves(x, reverse=False):
    """Split the channels of `x` into `(kept, transformed)` halves.

    With `reverse=False` the mask is 1 on the first half of the channels (kept as is,
    conditioning the coupling), and the second half is transformed; `reverse=True` is
    the complement.

    Example:

    >>> import numpy as np
    >>> kept, transformed = channel_halves(np.arange(4.0).reshape(1, 4))
    >>> np.asarray(kept).tolist(), np.asarray(transformed).tolist()
    ([[0.0, 1.0]], [[2.0, 3.0]])
    """
    c = x.shape[-1]
    first, second = x[..., : c // 2], x[..., c // 2 :]
    return (second, first) if reverse else (first, second)


def merge_channel_halves(kept, transformed, reverse=False):
    """The inverse of `channel_halves`.

    Example:

    >>> import numpy as np
    >>> x = np.arange(4.0).reshape(1, 4)
    >>> np.asarray(merge_channel_halves(*channel_halves(x, True), True)).tolist()
    [[0.0, 1.0, 2.0, 3.0]]
    """
    parts = [transformed, kept] if reverse else [kept, transformed]
    return ops.concatenate(parts, axis=-1)
