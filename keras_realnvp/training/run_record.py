"""A run's record `run.json`: the settings it started with and their later changes, for `--resume` to check."""

import json
from pathlib import Path

from keras_realnvp.training.atomic_files import write_text_atomically
from keras_realnvp.training.run_lock import RunFolderError

SETTINGS_FILE = "run.json"


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

