"""Random-access image sources: the embedded patches, a local image folder, a Hub dataset.

Local folders and Hub datasets are read with Hugging Face `datasets`, whose Arrow files
are memory-mapped: a dataset larger than RAM trains, and any example can be read by
index, which is what makes an interrupted run resume exactly. Images are decoded here,
one at a time, so a broken file is reported with its name.
"""

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from keras_realnvp.data.embedded import embedded_patch_origins, load_embedded_patches
from keras_realnvp.data.preprocessing import _SOURCE_KEY

EMBEDDED = "embedded"
EMBEDDED_CLASS_NAMES = ("china", "flower")  # embedded_patch_origins' photo numbers
# Local folders without a held-out split of their own keep every 20th image for evaluation.
DEFAULT_HELD_OUT_EVERY = 20


class ArraySource:
    """Images already in memory as a `(N, H, W, C)` uint8 array, optionally with class numbers.

    `classes` (`(N,)` integers) and `class_names` label the images for conditional
    training (`source_labels`).

    Example:

    >>> source = ArraySource(np.zeros((3, 4, 4, 3), np.uint8), "zeros")
    >>> len(source), source[2].shape
    (3, (4, 4, 3))
    """

    def __init__(self, images: np.ndarray, name: str, classes=None, class_names=None):
        self.images = images
        self.name = name
        self.classes = None if classes is None else np.asarray(classes)
        self.class_names = None if class_names is None else list(class_names)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index]


class HFImageSource:
    """One image column of a `datasets.Dataset`, optionally restricted to some rows.

    Images are stored undecoded (`datasets.Image(decode=False)`) and opened with PIL on
    access, so an unreadable or truncated file raises a `ValueError` naming it.
    """

    def __init__(self, dataset, image_column: str, name: str, rows=None):
        import datasets

        if image_column not in dataset.column_names:
            raise ValueError(
                f"{name} has no image column {image_column!r}; its columns are {', '.join(dataset.column_names)}."
            )
        self.dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
        self.image_column = image_column
        self.name = name
        self.rows = np.arange(len(dataset)) if rows is None else np.asarray(rows)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        record = self.dataset[int(self.rows[index])][self.image_column]
        where = record.get("path") or f"row {int(self.rows[index])}"
        try:
            data = record["bytes"] if record.get("bytes") is not None else Path(record["path"]).read_bytes()
            image = Image.open(io.BytesIO(data))
            image.load()
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
            raise ValueError(f"Cannot read image {where} of {self.name}: {error}") from None
        image.info[_SOURCE_KEY] = f"{where} of {self.name}"  # named in preprocessing's errors too
        return image


def _check_folder_files(source, files) -> None:
    """Refuse a folder without image files; warn (by name) about the files imagefolder ignores."""
    from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder

    extensions = {e.lower() for e in ImageFolder.EXTENSIONS}
    metadata = {"metadata.csv", "metadata.jsonl", "metadata.parquet"}
    images = [p for p in files if p.suffix.lower() in extensions]
    ignored = sorted(str(p.relative_to(source)) for p in files if p.suffix.lower() not in extensions
                     and p.name not in metadata)
    listed = ", ".join(ignored[:5]) + (f" and {len(ignored) - 5} more" if len(ignored) > 5 else "")
    if not images:
        raise ValueError(f"The image folder {source} has no image files (by extension); it holds {listed}.")
    if ignored:
        warnings.warn(f"{len(ignored)} files in the image folder {source} are not images and are ignored: {listed}.",
                      stacklevel=3)


def _split_rows(count: int, every: int, split: str) -> np.ndarray:
    rows = np.arange(count)
    held_out = rows % every == every - 1
    return rows[held_out] if split == "eval" else rows[~held_out]


def open_source(source: str, dataset_spec: dict, split: str):
    """The images of `source` for `split` ("train" or "eval").

    `source` is "embedded", a local folder of images (sub-folders allowed), or a Hub
    dataset id; `dataset_spec` is a preset's `dataset` metadata (image column, split
    names, `held_out_every` for datasets without a held-out split).

    Example:

    >>> len(open_source("embedded", {"patch_size": 16}, "eval"))
    416
    """
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}.")
    if source == EMBEDDED:
        which, patch_size = ("train" if split == "train" else "test"), dataset_spec.get("patch_size", 16)
        images = load_embedded_patches(which, patch_size)
        photos = embedded_patch_origins(which, patch_size)[:, 0]  # the class of a patch: its photo
        return ArraySource(images, f"embedded patches ({split})", photos, EMBEDDED_CLASS_NAMES)

    import datasets

    path = Path(source)
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"--dataset {source} is a file; pass a folder of images, 'embedded' or a Hub id.")
        files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
        if not files:
            raise ValueError(f"The image folder {source} is empty.")
        _check_folder_files(source, files)
        dataset = datasets.load_dataset("imagefolder", data_dir=str(path), split="train")
        every = dataset_spec.get("held_out_every") or DEFAULT_HELD_OUT_EVERY
        rows = _split_rows(len(dataset), every, split)
        return HFImageSource(dataset, "image", f"image folder {source}", rows)

    split_name = dataset_spec.get("train_split" if split == "train" else "eval_split")
    every = dataset_spec.get("held_out_every")
    if split_name is None and every:
        split_name = dataset_spec.get("train_split", "train")
    if split_name is None:
        raise ValueError(f"The dataset spec names no {split} split for {source}.")
    try:
        dataset = datasets.load_dataset(source, split=split_name)
    except Exception as error:  # offline, unknown id, no access...
        raise ValueError(f"Cannot load the Hub dataset {source!r} (split {split_name!r}): {error}") from None
    rows = _split_rows(len(dataset), every, split) if dataset_spec.get("eval_split") is None and every else None
    return HFImageSource(dataset, dataset_spec.get("image_column", "image"), f"Hub dataset {source}", rows)


def _binary(values, where: str) -> np.ndarray:
    """Attribute values (booleans, 0/1 or CelebA's -1/1, as numbers or strings) as {0, 1} floats."""
    try:
        array = np.asarray(values).astype(np.float64)
    except (TypeError, ValueError):
        kind = np.asarray(values).dtype
        raise ValueError(f"The attributes {where} must be booleans or numbers, got {kind}.") from None
    if array.size and not np.isin(array, (-1.0, 0.0, 1.0)).all():
        found = np.unique(array[~np.isin(array, (-1.0, 0.0, 1.0))])[:5]
        raise ValueError(f"The attributes {where} must be binary (booleans, 0/1 or -1/1), found {found.tolist()}.")
    return (array > 0).astype(np.float32)


def _rows_of(source, columns):
    """The values of `columns` at the source's rows, as a dict of lists (one read per column)."""
    subset = source.dataset.select_columns(columns)
    return subset[[int(r) for r in source.rows]]


def source_labels(source, dataset_spec: dict, condition_dim: int) -> tuple[np.ndarray, list[str]]:
    """The label vector of every example of `source` for a model with `condition_dim`, and their names.

    Returns `(labels, names)`: labels `(len(source), condition_dim)` float32, in the
    source's order (so `labels[k]` belongs to `source[k]`), and one name per entry. The
    first of these that the data has is used:

    - `dataset_spec["label_columns"]`: binary attributes, one column each (CelebA's 40
      boolean columns on the Hub); booleans, 0/1 and -1/1 all map to {0, 1};
    - `dataset_spec["attribute_column"]`: one column holding each example's attribute
      list (or a dict, read in the order of `label_columns` when given);
    - class numbers, one-hot encoded to `condition_dim` entries: the photo of an embedded
      patch, or `dataset_spec["label_column"]` (default `"label"`, which `datasets`'
      imagefolder fills from the class sub-folders of a local folder).

    Example:

    >>> labels, names = source_labels(open_source("embedded", {"patch_size": 16}, "eval"), {}, 2)
    >>> labels.shape, names, labels.sum(axis=1).tolist() == [1.0] * 416
    ((416, 2), ['china', 'flower'], True)
    """
    if isinstance(condition_dim, bool) or not isinstance(condition_dim, (int, np.integer)) or condition_dim < 1:
        raise ValueError(f"condition_dim must be an integer >= 1, got {condition_dim!r}.")
    classes, class_names = getattr(source, "classes", None), getattr(source, "class_names", None)
    dataset = getattr(source, "dataset", None)
    columns = [] if dataset is None else dataset.column_names
    attribute_names = list(dataset_spec.get("label_columns") or [])
    attribute_column = dataset_spec.get("attribute_column")
    class_column = dataset_spec.get("label_column") or "label"

    if classes is None and attribute_names and all(name in columns for name in attribute_names):
        if len(attribute_names) != condition_dim:
            raise ValueError(
                f"{source.name} has {len(attribute_names)} attribute columns but the model has "
                f"condition_dim={condition_dim}."
            )
        values = _rows_of(source, attribute_names)
        labels = np.stack([_binary(values[name], f"in column {name!r} of {source.name}") for name in attribute_names],
                          axis=1)
        return labels.reshape(len(source), condition_dim), attribute_names

    if classes is None and attribute_column and attribute_column in columns:
        entries = _rows_of(source, [attribute_column])[attribute_column]
        if entries and isinstance(entries[0], dict):
            keys = attribute_names or list(entries[0])
            entries = [[entry[key] for key in keys] for entry in entries]
        else:
            keys = attribute_names or [f"{attribute_column}[{i}]" for i in range(condition_dim)]
        lengths = {len(entry) for entry in entries}
        if lengths and lengths != {condition_dim}:
            raise ValueError(
                f"The attribute lists in column {attribute_column!r} of {source.name} have "
                f"{sorted(lengths)} entries; the model has condition_dim={condition_dim}."
            )
        labels = _binary(entries, f"in column {attribute_column!r} of {source.name}")
        return labels.reshape(len(source), condition_dim), list(keys)

    if classes is None and class_column in columns:
        classes = np.asarray(_rows_of(source, [class_column])[class_column])
        feature = dataset.features[class_column]
        class_names = list(getattr(feature, "names", None) or [])
        if class_names and len(class_names) != condition_dim:
            raise ValueError(
                f"{source.name} has {len(class_names)} classes ({', '.join(class_names[:10])}) in column "
                f"{class_column!r}; the model has condition_dim={condition_dim}."
            )
    if classes is None:
        raise ValueError(
            f"{source.name} has no labels for a conditional model (condition_dim={condition_dim}): it needs the "
            f"attribute columns named by the preset's dataset `label_columns`, an `attribute_column`, or a class "
            f"column {class_column!r} (a local folder gets one from its class sub-folders)."
        )
    classes = np.asarray(classes).reshape(-1)
    if classes.dtype == bool or not np.issubdtype(classes.dtype, np.integer):
        raise ValueError(f"The class numbers of {source.name} must be integers, got dtype {classes.dtype}.")
    if classes.size and (classes.min() < 0 or classes.max() >= condition_dim):
        raise ValueError(
            f"{source.name} has class numbers in [{classes.min()}, {classes.max()}]; a model with "
            f"condition_dim={condition_dim} takes classes 0..{condition_dim - 1} (one-hot)."
        )
    names = list(class_names) if class_names else [f"class {i}" for i in range(condition_dim)]
    if len(names) != condition_dim:
        raise ValueError(f"{source.name} has {len(names)} classes; the model has condition_dim={condition_dim}.")
    return np.eye(condition_dim, dtype=np.float32)[classes], names
