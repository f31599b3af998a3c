"""Label vectors for a conditional model, read from a dataset's columns.

`label_reader` decides which columns of a dataset hold the labels and how their values
become `(n, label_dim)` float32 vectors: binary attribute columns, one column of
attribute lists (or dicts), or class numbers one-hot encoded. `source_labels`
(random-access sources) and `stream_labels` (streamed ones) both read labels with it.
"""

import numpy as np


def binary_attributes(values, where: str) -> np.ndarray:
    """Attribute values (booleans, 0/1 or CelebA's -1/1, as numbers or strings) as {0, 1} float32.

    `where` says where the values come from in the error of values that are not binary.

    Example:

    >>> binary_attributes([True, False], "in a test").tolist(), binary_attributes(["-1", "1"], "in a test").tolist()
    ([1.0, 0.0], [0.0, 1.0])
    """
    try:
        array = np.asarray(values).astype(np.float64)
    except (TypeError, ValueError):
        kind = np.asarray(values).dtype
        raise ValueError(f"The attributes {where} must be booleans or numbers, got {kind}.") from None
    if array.size and not np.isin(array, (-1.0, 0.0, 1.0)).all():
        found = np.unique(array[~np.isin(array, (-1.0, 0.0, 1.0))])[:5]
        raise ValueError(f"The attributes {where} must be binary (booleans, 0/1 or -1/1), found {found.tolist()}.")
    return (array > 0).astype(np.float32)


def one_hot_classes(classes, label_dim: int, name: str) -> np.ndarray:
    """Class numbers `0..label_dim - 1` as one-hot float32 rows; `name` names the data in errors.

    Example:

    >>> one_hot_classes([1, 0], 3, "a test").tolist()
    [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    """
    classes = np.asarray(classes).reshape(-1)
    if classes.dtype == bool or not np.issubdtype(classes.dtype, np.integer):
        raise ValueError(f"The class numbers of {name} must be integers, got dtype {classes.dtype}.")
    if classes.size and (classes.min() < 0 or classes.max() >= label_dim):
        raise ValueError(
            f"{name} has class numbers in [{classes.min()}, {classes.max()}]; a model with "
            f"label_dim={label_dim} takes classes 0..{label_dim - 1} (one-hot)."
        )
    return np.eye(label_dim, dtype=np.float32)[classes]


def label_reader(name: str, features, dataset_spec: dict, label_dim: int, first_value):
    """How to read label vectors from a dataset's columns: `(columns, convert, names)`.

    `convert(values)` turns the values of `columns` for some examples (a dict of lists,
    as `datasets` gives them) into their `(n, label_dim)` float32 label vectors;
    `names` names each entry. `features` are the dataset's `datasets.Features` (the
    columns and their types), `first_value(column)` is the column's first value (read
    only for an `attribute_column` of dicts). `source_labels` says which columns are used.

    Example:

    >>> import datasets
    >>> features = datasets.Features({"label": datasets.ClassLabel(names=["cat", "dog"])})
    >>> columns, convert, names = label_reader("pets", features, {}, 2, None)
    >>> columns, names, convert({"label": [1, 0]}).tolist()
    (['label'], ['cat', 'dog'], [[0.0, 1.0], [1.0, 0.0]])
    """
    columns = list(features or [])
    attribute_names = list(dataset_spec.get("label_columns") or [])
    attribute_column = dataset_spec.get("attribute_column")
    class_column = dataset_spec.get("label_column") or "label"

    if attribute_names and all(column in columns for column in attribute_names):
        if len(attribute_names) != label_dim:
            raise ValueError(
                f"{name} has {len(attribute_names)} attribute columns but the model has "
                f"label_dim={label_dim}."
            )

        def convert_attributes(values):
            labels = [binary_attributes(values[column], f"in column {column!r} of {name}")
                      for column in attribute_names]
            return np.stack(labels, axis=1).reshape(-1, label_dim)

        return attribute_names, convert_attributes, attribute_names

    if attribute_column and attribute_column in columns:
        first = first_value(attribute_column)
        if isinstance(first, dict):
            keys = attribute_names or list(first)
        else:
            keys = attribute_names or [f"{attribute_column}[{i}]" for i in range(label_dim)]

        def convert_list(values):
            entries = values[attribute_column]
            if entries and isinstance(entries[0], dict):
                entries = [[entry[key] for key in keys] for entry in entries]
            lengths = {len(entry) for entry in entries}
            if lengths and lengths != {label_dim}:
                raise ValueError(
                    f"The attribute lists in column {attribute_column!r} of {name} have "
                    f"{sorted(lengths)} entries; the model has label_dim={label_dim}."
                )
            return binary_attributes(entries, f"in column {attribute_column!r} of {name}").reshape(-1, label_dim)

        return [attribute_column], convert_list, list(keys)

    if class_column in columns:
        class_names = list(getattr(features[class_column], "names", None) or [])
        if class_names and len(class_names) != label_dim:
            raise ValueError(
                f"{name} has {len(class_names)} classes ({', '.join(class_names[:10])}) in column "
                f"{class_column!r}; the model has label_dim={label_dim}."
            )
        names = class_names or [f"class {i}" for i in range(label_dim)]
        return [class_column], lambda values: one_hot_classes(values[class_column], label_dim, name), names

    raise ValueError(
        f"{name} has no labels for a conditional model (label_dim={label_dim}): it needs the "
        f"attribute columns named by the preset's dataset `label_columns`, an `attribute_column`, or a class "
        f"column {class_column!r} (a local folder gets one from its class sub-folders)."
    )
