"""Local image folders: their split sub-folders, and opening one split with `datasets`' imagefolder.

A local folder may hold split sub-folders, as `datasets`' imagefolder reads them:
`train/` (or `training/`) for training and `validation/` (`valid/`, `val/`, `dev/`) or
`test/` (`testing/`, `eval/`, `evaluation/`) for the held-out images; class sub-folders
inside each split still give the class labels. Only the folder's own sub-folders are
splits (a class folder named `test` inside `train/` is a class), and without an
evaluation split every `held_out_every`-th training image is held out.
`open_image_folder` is what `open_source` and `open_stream` read a folder with.
"""

import warnings
from pathlib import Path

from keras_realnvp.data.hf_images import require_datasets

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


def image_extensions() -> set[str]:
    """The file name endings (lower case) that `datasets`' imagefolder reads as images.

    Example:

    >>> {".png", ".jpg"} <= image_extensions()
    True
    """
    require_datasets()
    from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder

    return {e.lower() for e in ImageFolder.EXTENSIONS}


def _is_hidden(relative: Path) -> bool:
    # `datasets` skips hidden files and folders and "__" ones (__pycache__, __MACOSX) when it
    # lists a folder; the file lists handed to it here are filtered the same way.
    return any(part.startswith((".", "__")) for part in relative.parts)


def _check_folder_files(source, files) -> None:
    """Refuse a folder without image files; warn (by name) about the files imagefolder ignores."""
    extensions = image_extensions()
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
    >>> from PIL import Image
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
        extensions = image_extensions()
        if any(p.parent.parent == Path(folder) for files in splits.values() for p in files
               if p.suffix.lower() in extensions):
            options["drop_labels"] = True
    if eval_split is not None:
        return data_files, ("train" if split == "train" else eval_split), None, options
    every = dataset_spec.get("held_out_every") or DEFAULT_HELD_OUT_EVERY
    return data_files, "train", every, options


def open_image_folder(folder, dataset_spec: dict, split: str, streaming: bool = False):
    """Split `split` ("train" or "eval") of a local image folder: `(dataset, split name, held_out_every)`.

    The folder is read with `datasets`' imagefolder, as a `datasets.Dataset` or, with
    `streaming`, a `datasets.IterableDataset`; its image column is "image", and its
    "label" column (when it has class sub-folders) the class numbers. The split read is
    the folder's own split sub-folder (see the module), or with none for `split`, "train",
    whose every `held_out_every`-th row (the last of each group) is the held-out one;
    `held_out_every` is `None` when the folder has a held-out split. A path that is a file
    raises a `ValueError`.

    Example:

    >>> import tempfile
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("train/a.png", "train/b.png", "val/c.png"):
    ...     (root / name).parent.mkdir(exist_ok=True)
    ...     Image.new("RGB", (2, 2)).save(root / name)
    >>> dataset, split_name, every = open_image_folder(root, {}, "eval")
    >>> len(dataset), split_name, every
    (1, 'validation', None)
    """
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f"--dataset {folder} is a file; pass a folder of images, 'embedded' or a Hub id.")
    datasets = require_datasets()
    # The file lists are passed explicitly: `datasets`' own split detection would also read any
    # deeper folder named like a split (train/test/) as a split, and file names too (test_1.png).
    data_files, split_name, every, options = _folder_loading(path, dataset_spec, split)
    dataset = datasets.load_dataset("imagefolder", data_files=data_files, split=split_name, streaming=streaming,
                                    **options)
    return dataset, split_name, every
