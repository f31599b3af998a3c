"""Held-out images, with their labels for a conditional model: what evaluation, samples and checks read.

`held_out_data` is the one place that turns a dataset (a name such as "embedded", a
local folder or a Hub id, or a source already opened with `open_source`) into the
preprocessed held-out images at a model's size and, for a conditional model, each
image's label vector and the names of the label entries. It always returns the same
three things, `HeldOutData(images, labels, label_names)`, the last two `None` for an
unconditional request.

Example:

>>> images, labels, names = held_out_data("embedded", {"patch_size": 16}, (16, 16, 3), 4, label_dim=2)
>>> images.shape, images.dtype, labels.tolist(), names
((4, 16, 16, 3), dtype('uint8'), [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], ['china', 'flower'])
"""

from typing import NamedTuple

import numpy as np

from keras_realnvp.data.sources import open_source, source_labels
from keras_realnvp.data.training_batches import evaluation_images

CHOICES = ("first", "spread", "random")


class HeldOutData(NamedTuple):
    """Held-out images `(N, H, W, C)` (uint8 pixel values, not dequantized), their labels and the label names.

    `labels` is `(N, label_dim)` float32 and `label_names` one name per entry, or both
    `None` when no `label_dim` was asked for.

    Example:

    >>> data = HeldOutData(np.zeros((2, 4, 4, 3), np.uint8), None, None)
    >>> images, labels, names = data
    >>> images.shape, labels is None
    ((2, 4, 4, 3), True)
    """

    images: np.ndarray
    labels: np.ndarray | None
    label_names: list | None


class _Rows:
    """The examples `rows` of a source, in that order: what `evaluation_images` reads of a choice."""

    def __init__(self, source, rows):
        self.source, self.rows = source, rows
        self.name = source.name

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        return self.source[int(self.rows[index])]


def _chosen_rows(source, count, choice, seed):
    """The row numbers of `count` examples of a (non-streaming) source for `choice`."""
    total = len(source)
    if choice == "spread":  # evenly over the split: both photos of the embedded patches, several regions
        return np.linspace(0, total - 1, min(count, total)).round().astype(int) if total else np.arange(0)
    rng = np.random.default_rng(seed)
    classes = getattr(source, "classes", None)
    if classes is None:
        return rng.permutation(total)[:count]
    # One class after another (class 0, 1, ..., 0, 1, ...), so that every class shows in a picture;
    # as many rounds as the smallest class allows.
    by_class = [rng.permutation(np.flatnonzero(classes == c)) for c in np.unique(classes)]
    return np.array([row for rows in zip(*by_class) for row in rows][:count], dtype=int)


def held_out_data(source, dataset_spec, image_shape, count=None, *, label_dim=None, choice="first",
                  seed=0) -> HeldOutData:
    """The held-out images of a dataset at a model's size, and their labels for a conditional model.

    Args:
        source: "embedded", a local image folder or a Hub dataset id (opened with
            `open_source(source, dataset_spec, "eval")`), or a source already opened with
            `open_source` (any split; a streaming one too).
        dataset_spec: a preset's `dataset` metadata (`Preset.dataset`):
            its split names, image and label columns and `preprocessing` (default: none).
        image_shape: the model's `(H, W, C)`; every image is preprocessed to it, without randomness.
        count: how many images (at most; fewer where the split has fewer); `None`: all.
        label_dim: a conditional model's label length: each image's label vector is
            read as `source_labels` reads it (attribute columns, or classes one-hot);
            `None`: no labels.
        choice: which images: "first" (the first `count` in stored order: what the
            held-out bits/dim of training and evaluation use), "spread" (`count` evenly spread
            over the split) or "random" (a `seed`-ed random choice; a source with classes,
            such as the embedded patches' two photos, gives its classes in turn). A streaming
            source takes "first" only.
        seed: seed of the "random" choice.

    Returns:
        `HeldOutData(images, labels, label_names)`: uint8 images `(N, H, W, C)` (dequantize them
        with `keras_realnvp.data.dequantize_numpy` where a model takes them), float32 labels
        `(N, label_dim)` and one name per label entry, or `None` and `None`.

    Raises:
        ValueError: an unknown source or choice, a split without images, images that do not
        fit `image_shape`, labels that do not fit `label_dim`.

    Example:

    >>> spec = {"patch_size": 8}
    >>> images, labels, _ = held_out_data("embedded", spec, (8, 8, 3), 6, label_dim=2, choice="random", seed=1)
    >>> images.shape, labels.argmax(axis=1).tolist()
    ((6, 8, 8, 3), [0, 1, 0, 1, 0, 1])
    >>> held_out_data("embedded", spec, (8, 8, 1), 3, choice="spread").images.shape  # grayscale, spread out
    (3, 8, 8, 1)
    """
    from keras_realnvp.data.streaming import StreamingSource

    if choice not in CHOICES:
        raise ValueError(f"choice must be one of {CHOICES}, got {choice!r}.")
    spec = dict(dataset_spec or {})
    if isinstance(source, str):
        source = open_source(source, spec, "eval")
    labels = names = None
    if label_dim is not None:
        labels, names = source_labels(source, spec, label_dim)
    preprocessing = spec.get("preprocessing", "none")
    if choice != "first":
        if isinstance(source, StreamingSource):
            raise ValueError(f"A streaming source gives its first examples only (choice='first'), not {choice!r}.")
        rows = _chosen_rows(source, len(source) if count is None else count, choice, seed)
        if len(rows) == 0:
            raise ValueError(f"{source.name} has no images for evaluation.")
        source, labels = _Rows(source, rows), None if labels is None else np.asarray(labels)[rows]
    result = evaluation_images(source, image_shape, preprocessing, count, labels)
    images, labels = result if labels is not None else (result, None)
    return HeldOutData(images, labels, None if names is None else list(names))
