"""Random-access image sources: the embedded patches, a local image folder, a Hub dataset.

Local folders and Hub datasets are read with Hugging Face `datasets`, whose Arrow files
are memory-mapped: a dataset larger than RAM trains, and any example can be read by
index, which is what makes an interrupted run resume exactly. Images are decoded here,
one at a time, so a broken file is reported with its name.
"""

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from keras_realnvp.data.embedded import load_embedded_patches

EMBEDDED = "embedded"
# Local folders without a held-out split of their own keep every 20th image for evaluation.
DEFAULT_HELD_OUT_EVERY = 20


class ArraySource:
    """Images already in memory as a `(N, H, W, C)` uint8 array.

    Example:

    >>> source = ArraySource(np.zeros((3, 4, 4, 3), np.uint8), "zeros")
    >>> len(source), source[2].shape
    (3, (4, 4, 3))
    """

    def __init__(self, images: np.ndarray, name: str):
        self.images = images
        self.name = name

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
        except (OSError, UnidentifiedImageError, ValueError) as error:
            raise ValueError(f"Cannot read image {where} of {self.name}: {error}") from None
        return image


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
        images = load_embedded_patches("train" if split == "train" else "test", dataset_spec.get("patch_size", 16))
        return ArraySource(images, f"embedded patches ({split})")

    import datasets

    path = Path(source)
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"--dataset {source} is a file; pass a folder of images, 'embedded' or a Hub id.")
        files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
        if not files:
            raise ValueError(f"The image folder {source} is empty.")
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
