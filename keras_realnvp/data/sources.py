"""Random-access image sources: the embedded patches, a local image folder, a Hub dataset.

`open_source` opens the images of a training or held-out split, and `source_labels` gives
their label vectors for a conditional model. Local folders (`keras_realnvp.data.image_folders`,
split sub-folders included) and Hub datasets are read with Hugging Face `datasets`, by index
(`keras_realnvp.data.hf_images`), which is what makes an interrupted run resume exactly.
`open_source(..., streaming=True)` reads a Hub dataset or folder as a stream instead
(`keras_realnvp.data.streaming`).
"""

from pathlib import Path

import numpy as np

from keras_realnvp.data.embedded import EMBEDDED, embedded_patch_origins, load_embedded_patches
from keras_realnvp.data.hf_images import HFImageSource, require_datasets
from keras_realnvp.data.image_folders import open_image_folder
from keras_realnvp.data.label_columns import label_reader, one_hot_classes
from keras_realnvp.data.splits import hub_split, split_rows
from keras_realnvp.models.input_checks import check_count

EMBEDDED_CLASS_NAMES = ("china", "flower")  # embedded_patch_origins' photo numbers


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


def dataset_kind(source: str) -> str:
    """What kind of dataset `source` names: "embedded", "folder" (a local folder) or "hub" (a Hub dataset id).

    Example:

    >>> import tempfile
    >>> dataset_kind("embedded"), dataset_kind(tempfile.mkdtemp()), dataset_kind("tglcourse/lsun_church_train")
    ('embedded', 'folder', 'hub')
    """
    if source == EMBEDDED:
        return EMBEDDED
    return "folder" if Path(source).is_dir() else "hub"


def open_source(source: str, dataset_spec: dict, split: str, *, streaming: bool = False, num_examples=None,
                buffer_size=None):
    """The images of `source` for `split` ("train" or "eval").

    `source` is "embedded", a local folder of images (sub-folders allowed; split
    sub-folders as the module says), or a Hub dataset id; `dataset_spec` is a preset's
    `dataset` metadata (image column, split names, `held_out_every` for datasets without
    a held-out split).

    With `streaming=True` a Hub dataset (or a local folder) is read as a stream, not
    downloaded first: the result is a `keras_realnvp.data.streaming.StreamingSource`, for
    `StreamingBatches`; `num_examples` (the split's size, when the Hub does not record it)
    and `buffer_size` (its shuffle buffer) are passed on (see `open_stream`).

    Example:

    >>> len(open_source("embedded", {"patch_size": 16}, "eval"))
    416
    """
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}.")
    if streaming:
        from keras_realnvp.data.streaming import DEFAULT_BUFFER_SIZE, open_stream

        return open_stream(source, dataset_spec, split, num_examples=num_examples,
                           buffer_size=DEFAULT_BUFFER_SIZE if buffer_size is None else buffer_size)
    if num_examples is not None or buffer_size is not None:
        raise ValueError("num_examples and buffer_size apply to streaming=True only.")
    if source == EMBEDDED:
        which, patch_size = ("train" if split == "train" else "test"), dataset_spec.get("patch_size", 16)
        images = load_embedded_patches(which, patch_size)
        photos = embedded_patch_origins(which, patch_size)[:, 0]  # the class of a patch: its photo
        return ArraySource(images, f"embedded patches ({split})", photos, EMBEDDED_CLASS_NAMES)

    if Path(source).exists():
        dataset, _, every = open_image_folder(source, dataset_spec, split)
        rows = split_rows(len(dataset), every, split) if every else None
        return HFImageSource(dataset, "image", f"image folder {source}", rows)

    datasets = require_datasets()
    split_name, every = hub_split(source, dataset_spec, split)
    try:
        dataset = datasets.load_dataset(source, split=split_name)
    except Exception as error:  # offline, unknown id, no access...
        raise ValueError(f"Cannot load the Hub dataset {source!r} (split {split_name!r}): {error}") from None
    rows = split_rows(len(dataset), every, split) if every else None
    return HFImageSource(dataset, dataset_spec.get("image_column", "image"), f"Hub dataset {source}", rows)


def _rows_of(source, columns):
    """The values of `columns` at the source's rows, as a dict of lists (one read per column)."""
    subset = source.dataset.select_columns(columns)
    return subset[[int(r) for r in source.rows]]


def source_labels(source, dataset_spec: dict, label_dim: int):
    """The label vector of every example of `source` for a model with `label_dim`, and their names.

    Returns `(labels, names)`: labels `(len(source), label_dim)` float32, in the
    source's order (so `labels[k]` belongs to `source[k]`), and one name per entry. The
    first of these that the data has is used:

    - `dataset_spec["label_columns"]`: binary attributes, one column each (CelebA's 40
      boolean columns on the Hub); booleans, 0/1 and -1/1 all map to {0, 1};
    - `dataset_spec["attribute_column"]`: one column holding each example's attribute
      list (or a dict, read in the order of `label_columns` when given);
    - class numbers, one-hot encoded to `label_dim` entries: the photo of an embedded
      patch, or `dataset_spec["label_column"]` (default `"label"`, which `datasets`'
      imagefolder fills from the class sub-folders of a local folder).

    For a streaming source (`open_source(..., streaming=True)`) `labels` is a
    `keras_realnvp.data.streaming.StreamLabels`, which reads each example's label from
    its own columns as it streams by (for `StreamingBatches` and `evaluation_images`).

    Example:

    >>> labels, names = source_labels(open_source("embedded", {"patch_size": 16}, "eval"), {}, 2)
    >>> labels.shape, names, labels.sum(axis=1).tolist() == [1.0] * 416
    ((416, 2), ['china', 'flower'], True)
    """
    check_count(label_dim, "label_dim")
    from keras_realnvp.data.streaming import StreamingSource, stream_labels

    if isinstance(source, StreamingSource):
        return stream_labels(source, dataset_spec, label_dim)
    classes, class_names = getattr(source, "classes", None), getattr(source, "class_names", None)
    dataset = getattr(source, "dataset", None)
    if classes is None:
        first = lambda column: source.dataset[int(source.rows[0])][column] if len(source) else None  # noqa: E731
        columns, convert, names = label_reader(source.name, None if dataset is None else dataset.features,
                                               dataset_spec, label_dim, first)
        return convert(_rows_of(source, columns)).reshape(len(source), label_dim), names
    labels = one_hot_classes(classes, label_dim, source.name)
    names = list(class_names) if class_names else [f"class {i}" for i in range(label_dim)]
    if len(names) != label_dim:
        raise ValueError(f"{source.name} has {len(names)} classes; the model has label_dim={label_dim}.")
    return labels, names
