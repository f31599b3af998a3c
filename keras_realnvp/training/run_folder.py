"""A training run's folder: one run at a time, nothing overwritten, files replaced whole.

The pieces, each used by `TrainingRun`:

- `RunLock` (`keras_realnvp.training.run_lock`): the lock file `run.lock` that keeps a second
  run out of a folder in use.
- `open_run_folder` (here): creates and locks the folder; refuses a new run in a folder that
  holds another run's files unless asked to move that run aside (`move_aside`: into a
  sibling `NAME.old-<time>` folder, never deleted), and finishes a replacement that a crash
  cut short.
- `keras_realnvp.training.run_record`: the settings a run started with, recorded in
  `run.json`, against which a resumed run is checked.
- `keras_realnvp.training.atomic_files`: a file or preset folder is written beside its
  target, then renamed into place, so a crash leaves the previous version whole.
- `keras_realnvp.training.metrics_log`: the per-epoch metrics log `metrics.csv`, rewritten
  whole from the run's recorded history at each epoch end (so a resumed run never repeats
  or loses a row).
"""

import datetime
import itertools
import os
import shutil
from pathlib import Path

from keras_realnvp.training.atomic_files import INCOMPLETE, REPLACED, TMP, fsync_directory
from keras_realnvp.training.metrics_log import METRICS_FILE
from keras_realnvp.training.run_lock import RunFolderError, RunLock
from keras_realnvp.training.run_record import SETTINGS_FILE

# What a run writes into its folder; any of these (or a sample grid) makes the folder a run's.
RUN_ENTRIES = (SETTINGS_FILE, "checkpoints", "preset", "results.json", METRICS_FILE, "tensorboard")
SAMPLE_GRIDS = "samples_epoch_*.png"
# The folders replaced whole (`replace_folder`) and the files written whole (`write_text_atomically`).
_REPLACED_FOLDERS = ("preset",)
_WHOLE_FILES = (SETTINGS_FILE, "results.json", METRICS_FILE)
_TEMPORARY = (
    *(f"{name}{suffix}" for name in _REPLACED_FOLDERS for suffix in (INCOMPLETE, REPLACED)),
    *(f"{name}{TMP}" for name in _WHOLE_FILES),
)

__all__ = ["RunFolderError", "RunLock", "check_output_folder", "move_aside", "open_run_folder", "run_entries"]


def run_entries(folder) -> list:
    """The entries of `folder` that a training run wrote (checkpoints, preset, results, grids...).

    Example:

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "notes.txt").write_text("mine"); _ = (folder / "results.json").write_text("{}")
    >>> [p.name for p in run_entries(folder)]
    ['results.json']
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name in (*RUN_ENTRIES, *_TEMPORARY) or p.match(SAMPLE_GRIDS))


def check_output_folder(folder, resume: bool = False) -> None:
    """`ValueError` unless `folder` is, or can be created as, a writable folder (holding a run if `resume`).

    Example:

    >>> import tempfile, pathlib
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "a_file"
    >>> _ = file.write_text("")
    >>> check_output_folder(file.parent / "new" / "run")   # fine: created when the run starts
    >>> try:
    ...     check_output_folder(file / "run")
    ... except ValueError as error:
    ...     print("cannot be created" in str(error))
    True
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"--output {folder} is a file, not a folder; pass a folder for the run's files.")
    if resume and not run_entries(folder):
        raise RunFolderError(f"--resume: {folder} holds no training run to continue.")
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise RunFolderError(f"--output {folder} cannot be created: {existing} is a file, not a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunFolderError(f"--output {folder}: {existing} is not writable.")


def move_aside(folder) -> Path:
    """Move the run in `folder` (its `run_entries`) into a new sibling folder `NAME.old-<time>`; returns it.

    Other files in `folder`, and its lock, stay. Nothing is deleted.

    Example:

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> (folder / "checkpoints").mkdir(parents=True)
    >>> aside = move_aside(folder)
    >>> aside.name.startswith("run.old-"), [p.name for p in aside.iterdir()], list(folder.iterdir())
    (True, ['checkpoints'], [])
    """
    folder = Path(folder)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in itertools.count(1):
        aside = folder.with_name(f"{folder.name}.old-{stamp}" + (f"-{attempt}" if attempt > 1 else ""))
        try:
            aside.mkdir()  # exclusive: two moves in the same second get different folders
            break
        except FileExistsError:
            continue
    for entry in run_entries(folder):
        os.replace(entry, aside / entry.name)
    fsync_directory(folder)
    fsync_directory(aside)
    return aside


def _finish_replacements(folder: Path) -> None:
    """Complete or undo a `replace_folder` cut short in `folder`, and drop unfinished writes."""
    for name in _REPLACED_FOLDERS:
        target, previous = folder / name, folder / f"{name}{REPLACED}"
        if previous.exists():
            if target.exists():  # the new version was in place: only the old one's removal was left
                shutil.rmtree(previous)
            else:  # cut short between the two renames: the previous version goes back
                os.replace(previous, target)
        incomplete = folder / f"{name}{INCOMPLETE}"
        if incomplete.exists():
            shutil.rmtree(incomplete)
    for name in _WHOLE_FILES:
        (folder / f"{name}{TMP}").unlink(missing_ok=True)


def open_run_folder(folder, resume: bool = False, overwrite: bool = False):
    """Lock `folder` for a run; returns `(lock, where the previous run was moved or None)`.

    A new run (`resume=False`) needs a folder without another run's files: with `overwrite`
    that run is moved aside (`move_aside`), else `RunFolderError` says how to go on. A
    replacement of the preset folder that a crash cut short is finished first (see
    `keras_realnvp.training.atomic_files.replace_folder`). Release the lock (`with lock:`) when the run ends.

    Example:

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "results.json").write_text("{}")
    >>> try:
    ...     open_run_folder(folder)
    ... except RunFolderError as error:
    ...     print("--resume" in str(error), "--overwrite" in str(error))
    True True
    >>> lock, aside = open_run_folder(folder, overwrite=True)
    >>> with lock:
    ...     print([p.name for p in aside.iterdir()], [p.name for p in folder.iterdir()])
    ['results.json'] ['run.lock']
    """
    folder = Path(folder)
    check_output_folder(folder, resume)
    lock = RunLock(folder).acquire()
    try:
        _finish_replacements(folder)
        existing = run_entries(folder)
        if resume or not existing:
            return lock, None
        if not overwrite:
            names = ", ".join(p.name for p in existing[:5]) + (", ..." if len(existing) > 5 else "")
            raise RunFolderError(
                f"--output {folder} already holds a training run ({names}). Pass --resume to continue it, or "
                f"--overwrite to move it aside (into {folder.name}.old-<date>-<time> beside it) and start a new run."
            )
        return lock, move_aside(folder)
    except BaseException:
        lock.release()
        raise

