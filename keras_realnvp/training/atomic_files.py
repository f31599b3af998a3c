"""Files and folders replaced whole: written beside their place, synced, then renamed into it.

A crash leaves the previous version whole (or, for a folder cut short between its two
renames, both versions, which `keras_realnvp.training.run_folder.open_run_folder` sorts out).
"""

import os
import shutil
from pathlib import Path

# A folder written beside its target, and the target's previous version while it is replaced
# (`replace_folder`); files being written (`write_text_atomically`).
INCOMPLETE, REPLACED, TMP = ".incomplete", ".replaced", ".tmp"


def fsync_directory(folder) -> None:
    """Flush `folder`'s entries (a rename into it) to disk, where the OS can; nothing where it cannot.

    Example:

    >>> import tempfile
    >>> fsync_directory(tempfile.mkdtemp())
    """
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened; rename is durable enough there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomically(path, text: str) -> None:
    """Write `text` to `path` through a synced temporary file and a rename: the old or the new text, never half.

    Example:

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "results.json"
    >>> write_text_atomically(path, '{"steps": 6}')
    >>> path.read_text(), sorted(p.name for p in path.parent.iterdir())
    ('{"steps": 6}', ['results.json'])
    """
    path = Path(path)
    tmp = path.with_name(path.name + TMP)
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_directory(path.parent)


def replace_folder(new, target) -> Path:
    """Put the finished folder `new` in the place of `target`; the previous `target` stays until it is.

    `target` is renamed to `target.replaced`, `new` to `target`, then the previous one is
    removed. A crash between the renames leaves both versions whole; `open_run_folder` puts
    the previous one back.

    Example:

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name, text in (("preset", "old"), ("preset.incomplete", "new")):
    ...     (root / name).mkdir(); _ = (root / name / "config.json").write_text(text)
    >>> replace_folder(root / "preset.incomplete", root / "preset").joinpath("config.json").read_text()
    'new'
    >>> sorted(p.name for p in root.iterdir())
    ['preset']
    """
    new, target = Path(new), Path(target)
    previous = target.with_name(target.name + REPLACED)
    if target.exists():
        os.replace(target, previous)
    os.replace(new, target)
    fsync_directory(target.parent)
    if previous.exists():
        shutil.rmtree(previous)
    return target


def write_preset_atomically(model, folder, metadata: dict | None = None) -> Path:
    """`model.save_to_preset(folder, metadata)`, written beside `folder` and renamed into place.

    Until the new preset folder is whole (config, metadata and weights synced), the previous
    one stays as it was.

    Example:

    >>> import tempfile, pathlib
    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=1, filters=4, num_blocks=1)
    >>> folder = write_preset_atomically(model, pathlib.Path(tempfile.mkdtemp()) / "preset", {"note": "x"})
    >>> sorted(p.name for p in folder.parent.iterdir()), RealNVP.from_preset(str(folder)).filters
    (['preset'], 4)
    """
    folder = Path(folder)
    incomplete = folder.with_name(folder.name + INCOMPLETE)
    if incomplete.exists():  # left by a write that was cut short
        shutil.rmtree(incomplete)
    model.save_to_preset(incomplete, metadata)
    for path in incomplete.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())  # the files reach the disk before the rename can
    fsync_directory(incomplete)
    return replace_folder(incomplete, folder)

