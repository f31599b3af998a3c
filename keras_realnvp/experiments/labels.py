"""Label vectors for conditional models (appendix F)."""

import numpy as np
from keras import ops


def one_hot(indices, num_classes: int, dtype: str = "float32") -> np.ndarray:
    """Class indices to one-hot label vectors: what `RealNVP(..., label_dim=num_classes)` takes.

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


HELD_OUT = "held-out"


def recorded_label_names(metadata: dict, names=None) -> list:
    """The names of a conditional model's label entries: `names` if given, else what its preset records.

    The record is the training run's `trained["label_names"]`, else the dataset's
    `label_columns` (CelebA's 40 attributes); `[]` where neither is known.

    Args:
        metadata: a preset's metadata (`Preset.metadata`; `{}` for a model without one).
        names: names already known (from `keras_realnvp.data.held_out.held_out_data`), used first.

    Example:

    >>> recorded_label_names({"trained": {"label_names": ["cat", "dog"]}})
    ['cat', 'dog']
    >>> recorded_label_names({"dataset": {"label_columns": ["Smiling"]}}), recorded_label_names({})
    (['Smiling'], [])
    """
    trained, spec = metadata.get("trained", {}), metadata.get("dataset", {})
    return list(names or trained.get("label_names") or spec.get("label_columns") or [])


def requested_labels(request: str, label_dim, count: int, held_out=None, names=()) -> np.ndarray | None:
    """The label vectors `(count, label_dim)` that a request such as `"Smiling,Male"` asks for.

    Args:
        request: `"held-out"` (the labels of the real images shown, `held_out[:count]`), K
            comma-separated numbers (one label vector for every row), or comma-separated names
            of label entries (`names`) set to 1, all others 0.
        label_dim: the model's label length `K`; `None` (an unconditional model) takes
            `"held-out"` only, and gives `None`.
        count: rows of the result.
        held_out: `(N >= count, K)` labels of the real images, for `"held-out"`.
        names: the names of the label entries (`recorded_label_names`), for a request by name.

    Raises:
        ValueError: labels for an unconditional model, no `held_out` labels, unknown names,
            or a vector of the wrong length.

    Example:

    >>> requested_labels("b,c", 3, 2, names=["a", "b", "c"]).tolist()
    [[0.0, 1.0, 1.0], [0.0, 1.0, 1.0]]
    >>> requested_labels("0.5,1", 2, 1).tolist()
    [[0.5, 1.0]]
    >>> requested_labels("held-out", 2, 1, held_out=np.eye(2, dtype="float32")).tolist()
    [[1.0, 0.0]]
    >>> requested_labels("held-out", None, 4) is None
    True
    """
    if label_dim is None:
        if request != HELD_OUT:
            raise ValueError("labels go with a conditional model (label_dim); this one has none.")
        return None
    if request == HELD_OUT:
        if held_out is None:
            raise ValueError(f"no labels for the held-out images of this model (label_dim={label_dim}); "
                             "give labelled held-out data, or the labels themselves")
        return np.asarray(held_out, np.float32)[:count]
    parts = [part.strip() for part in request.split(",") if part.strip()]
    try:
        vector = np.array([float(part) for part in parts], np.float32)
    except ValueError:
        names = list(names or [])
        unknown = [part for part in parts if part not in names]
        if unknown or not names:
            known = ", ".join(names) if names else "none recorded"
            raise ValueError(f"unknown label names {', '.join(unknown)}; this model's labels: {known}") from None
        vector = np.array([1.0 if name in parts else 0.0 for name in names], np.float32)
    if vector.shape != (label_dim,):
        raise ValueError(f"the labels give {vector.size} numbers; the model has label_dim={label_dim}")
    return np.broadcast_to(vector, (count, label_dim)).copy()
