"""Images read through Hugging Face `datasets`: the optional import, one image record, an image column.

Local folders and Hub datasets are read with `datasets`, whose Arrow files are
memory-mapped: a dataset larger than RAM trains, and any example can be read by index,
which is what makes an interrupted run resume exactly. Images are stored undecoded and
decoded here, one at a time, so that a broken file is reported with its name.
"""

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from keras_realnvp.data.preprocessing import _SOURCE_KEY


def require_datasets():
    """The `datasets` module, or an `ImportError` naming the extra that installs it.

    Local folders and Hub datasets are read with Hugging Face `datasets`, an optional
    dependency (`pip install keras-realnvp[train]`); the embedded patches need none.

    Example:

    >>> require_datasets().__name__
    'datasets'
    """
    try:
        import datasets
    except ImportError as error:
        raise ImportError(
            "Image folders and Hub datasets are read with Hugging Face `datasets`; install it with "
            "`pip install keras-realnvp[train]` (or `pip install datasets`)."
        ) from error
    return datasets


def read_image(record, where: str, name: str) -> Image.Image:
    """Decode one undecoded image record (`{"bytes": ..., "path": ...}` as `datasets` stores it) with PIL.

    An unreadable or truncated file raises a `ValueError` naming it (`where` when the
    record has no path); the image carries its origin into preprocessing's errors.

    Example:

    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (3, 2)).save(buffer, format="PNG")
    >>> read_image({"bytes": buffer.getvalue(), "path": None}, "row 0", "a test").size
    (3, 2)
    >>> try:
    ...     read_image({"bytes": b"no image", "path": "photos/x.png"}, "row 1", "a test")
    ... except ValueError as error:
    ...     print(str(error).split(":")[0])
    Cannot read image photos/x.png of a test
    """
    if isinstance(record, Image.Image):  # a stream whose image column could not be left undecoded
        image = record
    else:
        where = record.get("path") or where
        try:
            data = record["bytes"] if record.get("bytes") is not None else Path(record["path"]).read_bytes()
            image = Image.open(io.BytesIO(data))
            image.load()
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
            raise ValueError(f"Cannot read image {where} of {name}: {error}") from None
    image.info[_SOURCE_KEY] = f"{where} of {name}"  # named in preprocessing's errors too
    return image


class HFImageSource:
    """One image column of a `datasets.Dataset`, optionally restricted to some rows.

    Images are stored undecoded (`datasets.Image(decode=False)`) and opened with PIL on
    access, so an unreadable or truncated file raises a `ValueError` naming it.

    Example:

    >>> import datasets
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (4, 4), color=(9, 9, 9)).save(buffer, format="PNG")
    >>> table = datasets.Dataset.from_dict({"image": [{"bytes": buffer.getvalue(), "path": None}] * 3})
    >>> source = HFImageSource(table.cast_column("image", datasets.Image()), "image", "a table", rows=[0, 2])
    >>> len(source), np.asarray(source[1]).shape
    (2, (4, 4, 3))
    """

    def __init__(self, dataset, image_column: str, name: str, rows=None):
        datasets = require_datasets()
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
        row = int(self.rows[index])
        return read_image(self.dataset[row][self.image_column], f"row {row}", self.name)
