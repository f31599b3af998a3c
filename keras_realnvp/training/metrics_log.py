"""The per-epoch metrics log `metrics.csv`, rewritten whole from the run's recorded history."""

import csv
import io
from pathlib import Path

from keras_realnvp.training.atomic_files import write_text_atomically

METRICS_FILE = "metrics.csv"
# The columns of `metrics.csv`, one row per epoch (see `write_metrics`).
METRICS_COLUMNS = ("epoch", "step", "train_bits_per_dim", "held_out_bits_per_dim", "held_out_standard_error",
                   "skipped_steps", "learning_rate", "images_per_second", "seconds")


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
