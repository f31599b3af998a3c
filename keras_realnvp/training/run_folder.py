"""A training run's folder: one run at a time, nothing overwritten, files replaced whole.

Four small pieces, each used by `TrainingRun`:

- `RunLock`: the lock file `run.lock` that keeps a second run out of a folder in use. It is an
  `fcntl.flock` lock, which the OS releases when its process dies (even by SIGKILL), so a killed
  run never blocks the `--resume` that follows; the file records the holder's PID and host for
  the error message.
- `open_run_folder`: creates and locks the folder; refuses a new run in a folder that holds
  another run's files unless asked to move that run aside (`move_aside`: into a sibling
  `NAME.old-<time>` folder, never deleted).
- `read_settings` / `write_settings` / `setting_differences`: the settings a run started with,
  recorded in `run.json`, against which a resumed run is checked.
- `write_text_atomically` / `write_preset_atomically`: a file or preset folder is written beside
  its target, then renamed into place, so a crash leaves the previous version whole.
- `write_metrics`: the per-epoch metrics log `metrics.csv`, rewritten whole from the run's
  recorded history at each epoch end (so a resumed run never repeats or loses a row).
"""

import csv
import datetime
import io
import itertools
import json
import os
import shutil
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; the lock file's creation alone keeps a second run out
    fcntl = None

LOCK_FILE = "run.lock"
SETTINGS_FILE = "run.json"
METRICS_FILE = "metrics.csv"
# The columns of `metrics.csv`, one row per epoch (see `write_metrics`).
METRICS_COLUMNS = ("epoch", "step", "train_bits_per_dim", "held_out_bits_per_dim", "held_out_standard_error",
                   "skipped_steps", "learning_rate", "images_per_second", "seconds")
# What a run writes into its folder; any of these (or a sample grid) makes the folder a run's.
RUN_ENTRIES = ("run.json", "checkpoints", "preset", "results.json", METRICS_FILE, "tensorboard")
SAMPLE_GRIDS = "samples_epoch_*.png"
# A folder written beside its target, and the target's previous version while it is replaced
# (`replace_folder`); files being written (`write_text_atomically`).
_INCOMPLETE, _REPLACED, _TMP = ".incomplete", ".replaced", ".tmp"
_REPLACED_FOLDERS = ("preset",)
_TEMPORARY = (
    *(f"{name}{suffix}" for name in _REPLACED_FOLDERS for suffix in (_INCOMPLETE, _REPLACED)),
    *(f"{name}{_TMP}" for name in ("run.json", "results.json", METRICS_FILE)),
)


class RunFolderError(ValueError):
    """A run folder cannot be used as asked: in use, holding another run, or unwritable.

    Example:

    >>> issubclass(RunFolderError, ValueError)
    True
    """


def _fsync_directory(folder: Path) -> None:
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
    tmp = path.with_name(path.name + _TMP)
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_directory(path.parent)


# ----------------------------------------------------------------------------- the lock


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class RunLock:
    """The lock file `folder/run.lock`: one training run per folder.

    `acquire()` raises `RunFolderError` naming the PID and host of the run that holds it.
    The lock is the OS's (`fcntl.flock`): a process that dies, however, releases it, and a lock
    file it leaves behind is taken over by the next run. `release()` removes the file.

    Example:

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with RunLock(folder) as lock:
    ...     try:
    ...         RunLock(folder).acquire()
    ...     except RunFolderError as error:
    ...         print(f"PID {os.getpid()}" in str(error))
    True
    >>> RunLock(folder).acquire().release()  # free again
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd = None

    def holder(self) -> dict:
        """What the lock file says about its holder (`pid`, `host`, `since`), `{}` if unreadable.

        Example:

        >>> import tempfile
        >>> with RunLock(tempfile.mkdtemp()) as lock:
        ...     lock.holder()["pid"] == os.getpid()
        True
        """
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):  # just created and not yet written, or already gone
            return {}

    def _refuse(self):
        holder = self.holder()
        who = f"PID {holder.get('pid', '?')} on host {holder.get('host', '?')}, since {holder.get('since', '?')}"
        # Without flock a killed run's lock file stays: only a person can tell that it is stale.
        stale = "" if fcntl is not None else " If no run is using it, remove the lock file."
        raise RunFolderError(
            f"{self.folder} is in use by another training run ({who}; lock file {self.path}): a run folder takes "
            f"one run at a time. Wait for that run to end or stop it, or use another --output.{stale}"
        )

    def acquire(self) -> "RunLock":
        """Take the lock (creating the folder), or raise `RunFolderError` if a live run holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        while self._fd is None:
            if fcntl is None:
                try:
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    self._refuse()
            else:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    self._refuse()
                if not self._names(fd):  # its holder removed the file after we opened it: take a new one
                    os.close(fd)
                    continue
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}).encode())
            self._fd = fd
        return self

    def _names(self, fd) -> bool:
        try:
            return os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Remove the lock file and let go of the lock (nothing if not held)."""
        if self._fd is None:
            return
        try:
            # Removed before the lock is let go: a run that takes the lock next creates its own file,
            # which this one then cannot remove by mistake.
            if fcntl is None or self._names(self._fd):
                self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self if self._fd is not None else self.acquire()

    def __exit__(self, *exc):
        self.release()


# ----------------------------------------------------------------------------- a run's folder


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
    _fsync_directory(folder)
    _fsync_directory(aside)
    return aside


def _finish_replacements(folder: Path) -> None:
    """Complete or undo a `replace_folder` cut short in `folder`, and drop unfinished writes."""
    for name in _REPLACED_FOLDERS:
        target, previous = folder / name, folder / f"{name}{_REPLACED}"
        if previous.exists():
            if target.exists():  # the new version was in place: only the old one's removal was left
                shutil.rmtree(previous)
            else:  # cut short between the two renames: the previous version goes back
                os.replace(previous, target)
        incomplete = folder / f"{name}{_INCOMPLETE}"
        if incomplete.exists():
            shutil.rmtree(incomplete)
    for name in ("run.json", "results.json", METRICS_FILE):
        (folder / f"{name}{_TMP}").unlink(missing_ok=True)


def open_run_folder(folder, resume: bool = False, overwrite: bool = False):
    """Lock `folder` for a run; returns `(lock, where the previous run was moved or None)`.

    A new run (`resume=False`) needs a folder without another run's files: with `overwrite`
    that run is moved aside (`move_aside`), else `RunFolderError` says how to go on. A
    replacement of the preset folder that a crash cut short is finished first (see
    `replace_folder`). Release the lock (`with lock:`) when the run ends.

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


# ----------------------------------------------------------------------------- whole files and folders


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
    previous = target.with_name(target.name + _REPLACED)
    if target.exists():
        os.replace(target, previous)
    os.replace(new, target)
    _fsync_directory(target.parent)
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
    incomplete = folder.with_name(folder.name + _INCOMPLETE)
    if incomplete.exists():  # left by a write that was cut short
        shutil.rmtree(incomplete)
    model.save_to_preset(incomplete, metadata)
    for path in incomplete.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())  # the files reach the disk before the rename can
    _fsync_directory(incomplete)
    return replace_folder(incomplete, folder)


# ----------------------------------------------------------------------------- recorded settings


def read_settings(folder) -> dict | None:
    """The record `write_settings` left in `folder` (`run.json`), or `None` if there is none.

    Example:

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> read_settings(folder) is None
    True
    >>> write_settings(folder, {"settings": {"seed": 0}})
    >>> read_settings(folder)["settings"]
    {'seed': 0}
    """
    path = Path(folder) / SETTINGS_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise RunFolderError(f"{path} cannot be read ({error}); the run's settings are unknown.") from None


def write_settings(folder, record: dict) -> None:
    """Write a run's record (its `settings` and their later changes) to `folder/run.json`, atomically.

    Example:

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_settings(folder, {"settings": {"batch_size": 8}})
    >>> json.loads((folder / "run.json").read_text())["settings"]["batch_size"]
    8
    """
    write_text_atomically(Path(folder) / SETTINGS_FILE, json.dumps(record, indent=2) + "\n")


def setting_differences(recorded: dict, requested: dict, keys, prefix: str = "") -> list:
    """`"key: recorded A, requested B"` for each of `keys` whose two values differ (JSON-wise).

    A key missing from one side is `(not recorded)` / `(not requested)`.

    Example:

    >>> setting_differences({"filters": 4, "seed": 0}, {"filters": 8, "seed": 0}, ["filters", "seed"], "model.")
    ['model.filters: recorded 4, requested 8']
    """
    def stored(values, key, missing):  # as run.json stores it: tuples as lists
        return json.dumps(values[key], sort_keys=True) if key in values else missing

    differences = []
    for key in keys:
        before, after = stored(recorded, key, "(not recorded)"), stored(requested, key, "(not requested)")
        if before != after:
            differences.append(f"{prefix}{key}: recorded {before}, requested {after}")
    return differences


# ----------------------------------------------------------------------------- the metrics log


def write_metrics(folder, history) -> None:
    """Write `folder/metrics.csv` atomically: a header of `METRICS_COLUMNS`, then one row per epoch of `history`.

    `history` is the run's per-epoch records (dicts, as the checkpoints and `results.json`
    keep them); keys outside `METRICS_COLUMNS` are left out and missing ones (a record of an
    older run) are empty cells. The file is rewritten whole from the history that the
    checkpoint being continued recorded, so a resumed run neither repeats nor loses a row.

    Example:

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_metrics(folder, [{"epoch": 1, "step": 3, "train_bits_per_dim": 7.5, "other": "left out"}])
    >>> print((folder / "metrics.csv").read_text().splitlines()[1])
    1,3,7.5,,,,,,
    """
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRICS_COLUMNS, extrasaction="ignore", restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text_atomically(Path(folder) / METRICS_FILE, text.getvalue())
