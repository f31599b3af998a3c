"""Random-access image sources: the embedded patches, a local image folder, a Hub dataset.

Local folders and Hub datasets are read with Hugging Face `datasets`, whose Arrow files
are memory-mapped: a dataset larger than RAM trains, and any example can be read by
index, which is what makes an interrupted run resume exactly. Images are decoded here,
one at a time, so a broken file is reported with its name. `open_source(...,
streaming=True)` reads a Hub dataset as a stream instead (`keras_realnvp.data.streaming`).

A local folder may hold split sub-folders, as `datasets`' imagefolder reads them:
`train/` (or `training/`) for training and `validation/` (`valid/`, `val/`, `dev/`) or
`test/` (`testing/`, `eval/`, `evaluation/`) for the held-out images; class sub-folders
inside each split still give the class labels. Only the folder's own sub-folders are
splits (a class folder named `test` inside `train/` is a class), and without an
evaluation split every `held_out_every`-th training image is held out.
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
# The split sub-folder names of `datasets`' imagefolder (`datasets.data_files.SPLIT_KEYWORDS`); here
# only a folder's own sub-folders are splits, so that a class folder named "test" stays a class.
FOLDER_SPLITS = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "dev", "val"),
    "test": ("test", "testing", "eval", "evaluation"),
}
# The held-out split of a folder that has both: validation, as the built-in presets evaluate on.
EVAL_SPLIT_PREFERENCE = ("validation", "test")


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


def _is_hidden(relative: Path) -> bool:
    # `datasets` skips hidden files and folders and "__" ones (__pycache__, __MACOSX) when it
    # lists a folder; the file lists handed to it here are filtered the same way.
    return any(part.startswith((".", "__")) for part in relative.parts)


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


def folder_splits(folder) -> dict[str, list[Path]]:
    """The files of each split of a local image folder: `{"train": [...], "validation": [...], ...}`.

    The folder's own sub-folders named as `datasets`' imagefolder names splits
    (`FOLDER_SPLITS`: `train/`, `test/`, `validation/`, `valid/`, `val/`...) are its
    splits, each holding images directly or in class sub-folders; deeper folders are
    never splits. A folder without split sub-folders is one "train" split of all its
    files. Files are sorted by path; hidden ones are left out, as `datasets` does. Raises
    a `ValueError` for an empty folder, a split without images, or split folders
    without a training one, and warns about the files that are not read (not images,
    or outside the split folders).

    Example:

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("train/cats/1.png", "train/test/2.png", "val/cats/3.png"):
    ...     (root / name).parent.mkdir(parents=True, exist_ok=True)
    ...     Image.new("RGB", (2, 2)).save(root / name)
    >>> {split: [str(p.relative_to(root)) for p in files] for split, files in folder_splits(root).items()}
    {'train': ['train/cats/1.png', 'train/test/2.png'], 'validation': ['val/cats/3.png']}
    """
    require_datasets()  # its imagefolder's list of image extensions
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not _is_hidden(p.relative_to(folder)))
    if not files:
        raise ValueError(f"The image folder {folder} is empty.")
    split_of = {keyword: split for split, keywords in FOLDER_SPLITS.items() for keyword in keywords}
    split_folders = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name in split_of)
    if not split_folders:
        _check_folder_files(folder, files)
        return {"train": files}
    found = {split_of[name] for name in split_folders}
    if "train" not in found:
        raise ValueError(
            f"The image folder {folder} has the split folder(s) {', '.join(f'{n}/' for n in split_folders)} but no "
            "train/ (or training/) folder: put the training images in train/, or rename a class folder that is not "
            f"a split ({', '.join(sorted(split_of))} name splits)."
        )
    by_folder = {name: [] for name in split_folders}
    outside = []
    for path in files:
        parts = path.relative_to(folder).parts
        (by_folder[parts[0]] if len(parts) > 1 and parts[0] in by_folder else outside).append(path)
    splits = {split: [] for split in FOLDER_SPLITS if split in found}
    for name, split_files in by_folder.items():
        if not split_files:
            raise ValueError(f"The split folder {name}/ of the image folder {folder} is empty.")
        _check_folder_files(folder / name, split_files)
        splits[split_of[name]].extend(split_files)
    splits = {split: sorted(split_files) for split, split_files in splits.items()}
    if outside:
        listed = ", ".join(str(p.relative_to(folder)) for p in outside[:5])
        more = f" and {len(outside) - 5} more" if len(outside) > 5 else ""
        warnings.warn(
            f"{len(outside)} files of the image folder {folder} are outside its split folders "
            f"({', '.join(f'{n}/' for n in split_folders)}) and are ignored: {listed}{more}.",
            stacklevel=3,
        )
    return splits


def _folder_eval_split(splits: dict, dataset_spec: dict) -> str | None:
    """The split of a folder that is held out: the spec's `eval_split` if the folder has it, else validation/test."""
    wanted = dataset_spec.get("eval_split")
    named = [split for split, keywords in FOLDER_SPLITS.items() if wanted in (split, *keywords)]
    for split in [*named, *EVAL_SPLIT_PREFERENCE]:
        if split != "train" and split in splits:
            return split
    return None


def _folder_loading(folder, dataset_spec: dict, split: str):
    """`(data_files, split name to read, held_out_every or None, load options)` for a local image folder."""
    splits = folder_splits(folder)
    eval_split = _folder_eval_split(splits, dataset_spec)
    data_files = {name: [str(p) for p in files] for name, files in splits.items()}
    options = {}
    if len(splits) > 1:
        # Images directly in the split folders would get the split names as class labels from
        # imagefolder (one label per parent folder name); only class sub-folders name classes.
        extensions = _image_extensions()
        if any(p.parent.parent == Path(folder) for files in splits.values() for p in files
               if p.suffix.lower() in extensions):
            options["drop_labels"] = True
    if eval_split is not None:
        return data_files, ("train" if split == "train" else eval_split), None, options
    every = dataset_spec.get("held_out_every") or DEFAULT_HELD_OUT_EVERY
    return data_files, "train", every, options


def _image_extensions() -> set[str]:
    from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder

    return {e.lower() for e in ImageFolder.EXTENSIONS}


def _hub_split(source: str, dataset_spec: dict, split: str) -> tuple[str, int | None]:
    """The Hub split to read for `split`, and `held_out_every` when the held-out rows come from it."""
    split_name = dataset_spec.get("train_split" if split == "train" else "eval_split")
    every = dataset_spec.get("held_out_every")
    if split_name is None and every:
        split_name = dataset_spec.get("train_split", "train")
    if split_name is None:
        raise ValueError(f"The dataset spec names no {split} split for {source}.")
    return split_name, (every if dataset_spec.get("eval_split") is None and every else None)


def _split_rows(count: int, every: int, split: str) -> np.ndarray:
    rows = np.arange(count)
    held_out = rows % every == every - 1
    return rows[held_out] if split == "eval" else rows[~held_out]


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

    datasets = require_datasets()
    path = Path(source)
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"--dataset {source} is a file; pass a folder of images, 'embedded' or a Hub id.")
        # The file lists are passed explicitly: `datasets`' own split detection would also read any
        # deeper folder named like a split (train/test/) as a split, and file names too (test_1.png).
        data_files, split_name, every, options = _folder_loading(path, dataset_spec, split)
        dataset = datasets.load_dataset("imagefolder", data_files=data_files, split=split_name, **options)
        rows = _split_rows(len(dataset), every, split) if every else None
        return HFImageSource(dataset, "image", f"image folder {source}", rows)

    split_name, every = _hub_split(source, dataset_spec, split)
    try:
        dataset = datasets.load_dataset(source, split=split_name)
    except Exception as error:  # offline, unknown id, no access...
        raise ValueError(f"Cannot load the Hub dataset {source!r} (split {split_name!r}): {error}") from None
    rows = _split_rows(len(dataset), every, split) if every else None
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


def _one_hot(classes, condition_dim: int, name: str) -> np.ndarray:
    classes = np.asarray(classes).reshape(-1)
    if classes.dtype == bool or not np.issubdtype(classes.dtype, np.integer):
        raise ValueError(f"The class numbers of {name} must be integers, got dtype {classes.dtype}.")
    if classes.size and (classes.min() < 0 or classes.max() >= condition_dim):
        raise ValueError(
            f"{name} has class numbers in [{classes.min()}, {classes.max()}]; a model with "
            f"condition_dim={condition_dim} takes classes 0..{condition_dim - 1} (one-hot)."
        )
    return np.eye(condition_dim, dtype=np.float32)[classes]


def _check_condition_dim(condition_dim) -> None:
    if isinstance(condition_dim, bool) or not isinstance(condition_dim, (int, np.integer)) or condition_dim < 1:
        raise ValueError(f"condition_dim must be an integer >= 1, got {condition_dim!r}.")


def label_reader(name: str, features, dataset_spec: dict, condition_dim: int, first_value):
    """How to read label vectors from a dataset's columns: `(columns, convert, names)`.

    `convert(values)` turns the values of `columns` for some examples (a dict of lists,
    as `datasets` gives them) into their `(n, condition_dim)` float32 label vectors;
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
        if len(attribute_names) != condition_dim:
            raise ValueError(
                f"{name} has {len(attribute_names)} attribute columns but the model has "
                f"condition_dim={condition_dim}."
            )

        def convert_attributes(values):
            labels = [_binary(values[column], f"in column {column!r} of {name}") for column in attribute_names]
            return np.stack(labels, axis=1).reshape(-1, condition_dim)

        return attribute_names, convert_attributes, attribute_names

    if attribute_column and attribute_column in columns:
        first = first_value(attribute_column)
        if isinstance(first, dict):
            keys = attribute_names or list(first)
        else:
            keys = attribute_names or [f"{attribute_column}[{i}]" for i in range(condition_dim)]

        def convert_list(values):
            entries = values[attribute_column]
            if entries and isinstance(entries[0], dict):
                entries = [[entry[key] for key in keys] for entry in entries]
            lengths = {len(entry) for entry in entries}
            if lengths and lengths != {condition_dim}:
                raise ValueError(
                    f"The attribute lists in column {attribute_column!r} of {name} have "
                    f"{sorted(lengths)} entries; the model has condition_dim={condition_dim}."
                )
            return _binary(entries, f"in column {attribute_column!r} of {name}").reshape(-1, condition_dim)

        return [attribute_column], convert_list, list(keys)

    if class_column in columns:
        class_names = list(getattr(features[class_column], "names", None) or [])
        if class_names and len(class_names) != condition_dim:
            raise ValueError(
                f"{name} has {len(class_names)} classes ({', '.join(class_names[:10])}) in column "
                f"{class_column!r}; the model has condition_dim={condition_dim}."
            )
        names = class_names or [f"class {i}" for i in range(condition_dim)]
        return [class_column], lambda values: _one_hot(values[class_column], condition_dim, name), names

    raise ValueError(
        f"{name} has no labels for a conditional model (condition_dim={condition_dim}): it needs the "
        f"attribute columns named by the preset's dataset `label_columns`, an `attribute_column`, or a class "
        f"column {class_column!r} (a local folder gets one from its class sub-folders)."
    )


def source_labels(source, dataset_spec: dict, condition_dim: int):
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

    For a streaming source (`open_source(..., streaming=True)`) `labels` is a
    `keras_realnvp.data.streaming.StreamLabels`, which reads each example's label from
    its own columns as it streams by (for `StreamingBatches` and `evaluation_images`).

    Example:

    >>> labels, names = source_labels(open_source("embedded", {"patch_size": 16}, "eval"), {}, 2)
    >>> labels.shape, names, labels.sum(axis=1).tolist() == [1.0] * 416
    ((416, 2), ['china', 'flower'], True)
    """
    _check_condition_dim(condition_dim)
    from keras_realnvp.data.streaming import StreamingSource, stream_labels

    if isinstance(source, StreamingSource):
        return stream_labels(source, dataset_spec, condition_dim)
    classes, class_names = getattr(source, "classes", None), getattr(source, "class_names", None)
    dataset = getattr(source, "dataset", None)
    if classes is None:
        first = lambda column: source.dataset[int(source.rows[0])][column] if len(source) else None  # noqa: E731
        columns, convert, names = label_reader(source.name, None if dataset is None else dataset.features,
                                               dataset_spec, condition_dim, first)
        return convert(_rows_of(source, columns)).reshape(len(source), condition_dim), names
    labels = _one_hot(classes, condition_dim, source.name)
    names = list(class_names) if class_names else [f"class {i}" for i in range(condition_dim)]
    if len(names) != condition_dim:
        raise ValueError(f"{source.name} has {len(names)} classes; the model has condition_dim={condition_dim}.")
    return labels, names
