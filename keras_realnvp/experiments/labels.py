"""Label vectors for conditional models (appendix F)."""

import numpy as np
from keras import ops


def one_hot(indices, num_classes: int, dtype: str = "float32") -> np.ndarray:
    """Class indices to one-hot label vectors: what `RealNVP(..., condition_dim=num_classes)` takes.

    Args:
        indices: integers in `[0, num_classes)`, any shape (a list, numpy array or tensor).
        num_classes: the length `K` of each label vector.
        dtype: float dtype of the result.

    Returns:
        A numpy array of shape `(*indices.shape, num_classes)`.

    Example:

    >>> one_hot([2, 0], 3).tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}.")
    values = np.asarray(ops.convert_to_numpy(indices) if hasattr(indices, "shape") else indices)
    if values.size == 0:
        values = values.astype(np.int64)
    if values.dtype == bool or not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"indices must be integers (class numbers), got dtype {values.dtype}.")
    if values.size and (values.min() < 0 or values.max() >= num_classes):
        raise ValueError(f"indices must lie in [0, {num_classes}), got values in [{values.min()}, {values.max()}].")
    return np.eye(num_classes, dtype=dtype)[values]
