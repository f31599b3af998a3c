"""What a training run shows: metrics.csv, Keras callbacks, TensorBoard, progress bars, warnings; streamed data.

The runs are `helpers.run_tiny` (the session's tiny schedule and network), so they reuse the
programs that `tiny_run` compiled. The streamed run reads a local folder of 16x16 PNGs (the
preset's image shape) with train/ and test/ split sub-folders; no Hub is involved.
"""

import csv
import importlib.util
import json
import math
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import TINY_RUN, run_tiny
from PIL import Image

from keras_realnvp import RealNVP
from keras_realnvp.cli import train as train_tool
from keras_realnvp.data import streaming
from keras_realnvp.evaluation import held_out_bits_per_dim
from keras_realnvp.training import CheckpointManager, RunFolderError, TrainingRun
from keras_realnvp.training.epoch_outputs import write_sample_grid
from keras_realnvp.training.metrics_log import METRICS_COLUMNS

TENSORBOARD_MISSING = [name for name in ("tensorflow", "tensorboard") if importlib.util.find_spec(name) is None]


def _metrics(folder) -> list[dict]:
    with open(Path(folder) / "metrics.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == METRICS_COLUMNS
        return list(reader)


def _assert_rows_are_the_history(rows, history):
    assert [int(row["epoch"]) for row in rows] == [record["epoch"] for record in history]
    for row, record in zip(rows, history, strict=True):
        assert int(row["step"]) == record["step"]
        assert int(row["skipped_steps"]) == record["skipped_steps"]
        for key in ("train_bits_per_dim", "held_out_bits_per_dim", "held_out_standard_error"):
            assert float(row[key]) == pytest.approx(record[key], rel=1e-12), key


@pytest.fixture
def finished_run(tiny_run, tmp_path):
    """A copy of the session's finished tiny run (2 epochs of 3 steps), to resume without touching it."""
    folder = tmp_path / "run"
    shutil.copytree(tiny_run[0], folder)
    return folder


class Recorder(keras.callbacks.Callback):
    """Every fit event a callback receives: (event, epoch or batch index, sorted log keys)."""

    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append(("train_begin", None, None))

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch, None))

    def on_train_batch_end(self, batch, logs=None):
        self.events.append(("batch_end", batch, sorted(logs or {})))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch, sorted(logs or {})))

    def on_train_end(self, logs=None):
        self.events.append(("train_end", None, None))

    def names(self, event):
        return [index for name, index, _ in self.events if name == event]


# ----------------------------------------------------------------------------- metrics.csv


def test_metrics_csv_has_one_row_per_epoch_with_the_recorded_numbers(tiny_run):
    output, results = tiny_run
    rows = _metrics(output)
    assert len(rows) == TINY_RUN["epochs"] == 2
    _assert_rows_are_the_history(rows, results["history"])
    assert [int(row["step"]) for row in rows] == [3, 6]
    for row in rows:
        assert float(row["learning_rate"]) == 0.001  # the preset's, as float32 shows it: 7 digits
        for key in ("images_per_second", "seconds"):  # measured: only that they are measured
            assert math.isfinite(float(row[key])) and float(row[key]) > 0, (key, row)
    # The history in results.json carries the same new fields.
    assert results["history"][0]["learning_rate"] == 0.001
    assert results["history"][1]["images_per_second"] == float(rows[1]["images_per_second"])


def test_a_stopped_then_resumed_run_has_each_epoch_once_and_callbacks_see_every_fit(tmp_path):
    first, second = Recorder(), Recorder()
    stopped = run_tiny(tmp_path, stop_after_steps=4, callbacks=[first])
    assert stopped["stopped_at_step"] == 4
    rows = _metrics(tmp_path)
    _assert_rows_are_the_history(rows, stopped["history"])
    assert len(rows) == 1
    # Two chunks, two fit calls of one epoch each, numbered as the run's epochs: steps 1-3, then step 4.
    assert first.names("train_begin") == [None, None] and first.names("train_end") == [None, None]
    assert first.names("epoch_begin") == [0, 1] and first.names("epoch_end") == [0, 1]
    assert first.names("batch_end") == [0, 1, 2, 0]
    assert all("bits_per_dim" in keys for name, _, keys in first.events if name in ("batch_end", "epoch_end"))
    # A crash after a row was written but before its checkpoint: the row is of an epoch the
    # checkpoint did not reach, and must not stay (nor be doubled) once the run resumes.
    with open(tmp_path / "metrics.csv", "a") as f:
        f.write("2,6,1.0,1.0,0.1,0,0.001,1.0,1.0\n")
    resumed = run_tiny(tmp_path, resume=True, callbacks=[second])
    rows_after = _metrics(tmp_path)
    assert len(rows_after) == 2 and [int(row["epoch"]) for row in rows_after] == [1, 2]
    _assert_rows_are_the_history(rows_after, resumed["history"])
    assert rows_after[0] == rows[0]  # the first epoch's row as the first process wrote it
    assert float(rows_after[1]["train_bits_per_dim"]) != 1.0
    # The resumed fit: the rest of the second epoch (steps 5 and 6), still numbered epoch 1.
    assert second.names("epoch_begin") == [1] and second.names("batch_end") == [0, 1]
    assert second.names("train_begin") == [None]


def test_callbacks_must_be_keras_callbacks(tmp_path):
    with pytest.raises(ValueError, match="callbacks must be a list of keras.callbacks.Callback"):
        TrainingRun(**TINY_RUN, output=tmp_path, callbacks=[print])


# ----------------------------------------------------------------------------- warnings, not prints


class _DivergedModel:
    """What `write_sample_grid` uses of a model whose samples are not finite."""

    image_shape = (16, 16, 3)

    def sample(self, count, temperature=1.0, seed=None, labels=None):
        return np.full((count, 16, 16, 3), np.nan, np.float32)


def test_non_finite_samples_are_a_warning_not_a_print(tmp_path, capsys):
    path = tmp_path / "samples_epoch_001.png"
    data = np.zeros((4, 16, 16, 3), np.uint8)
    with pytest.warns(RuntimeWarning, match="samples are not finite .* no sample grid samples_epoch_001.png"):
        assert not write_sample_grid(_DivergedModel(), data, None, path, seed=1)
    assert not path.exists()
    assert capsys.readouterr().out == ""


def test_a_run_folder_without_run_json_is_a_warning_not_a_print(finished_run, capsys):
    (finished_run / "run.json").unlink()  # as a run started before run.json was written
    with pytest.warns(UserWarning, match="has no run.json .* only the model could be checked"):
        run_tiny(finished_run, resume=True)
    assert capsys.readouterr().out == ""  # verbose=0: nothing printed
    assert json.loads((finished_run / "run.json").read_text())["settings"]["batch_size"] == 8


# ----------------------------------------------------------------------------- held-out progress bar


def test_the_held_out_evaluation_shows_a_progress_bar_and_the_same_numbers(capsys):
    model = RealNVP(image_shape=(8, 8, 3), num_scales=1, filters=4, num_blocks=1, seed=0)
    pixels = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    quiet = held_out_bits_per_dim(model, pixels, num_draws=2, batch_size=4)
    assert capsys.readouterr().out == ""
    shown = held_out_bits_per_dim(model, pixels, num_draws=2, batch_size=4, verbose=1)
    assert shown == quiet
    assert "12/12" in capsys.readouterr().out  # 6 images x 2 draws, padding not counted
    with pytest.raises(ValueError, match="verbose must be 0, 1 or 2"):
        held_out_bits_per_dim(model, pixels, verbose=3)


# ----------------------------------------------------------------------------- TensorBoard


def test_tensorboard_without_its_packages_is_refused_at_startup(tmp_path, capsys, monkeypatch):
    real_find_spec = importlib.util.find_spec
    # As if tensorboard were not installed (it is, in the test extra).
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard"
                        else real_find_spec(name, *a))
    with pytest.raises(ValueError, match=r"--tensorboard .* needs the tensorflow and tensorboard packages"):
        TrainingRun(**TINY_RUN, output=tmp_path / "run", tensorboard=True)
    with pytest.raises(SystemExit) as raised:
        train_tool.main(["--output", str(tmp_path / "run"), "--tensorboard"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert raised.value.code == 2 and len(lines) == 1 and "pip install" in lines[0], lines
    assert not (tmp_path / "run").exists()  # refused before the folder was made


@pytest.mark.skipif(bool(TENSORBOARD_MISSING), reason=f"not installed: {', '.join(TENSORBOARD_MISSING)}")
def test_tensorboard_logs_hold_the_training_and_held_out_curves(tmp_path):
    results = run_tiny(tmp_path, tensorboard=True)
    assert len(results["history"]) == 2
    for part in ("train", "validation"):
        assert list((tmp_path / "tensorboard" / part).glob("events.out.tfevents.*")), part
    assert json.loads((tmp_path / "run.json").read_text())["settings"]["tensorboard"] is True
    # What TensorBoard reads back: one held-out point per epoch, the values of the results.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    board = EventAccumulator(str(tmp_path / "tensorboard" / "validation"), size_guidance={"tensors": 0})
    board.Reload()
    points = [(e.step, float(np.asarray(tensor_util.make_ndarray(e.tensor_proto))))
              for e in board.Tensors("epoch_bits_per_dim")]
    expected = [(i, record["held_out_bits_per_dim"]) for i, record in enumerate(results["history"])]
    assert [step for step, _ in points] == [step for step, _ in expected]
    np.testing.assert_allclose([v for _, v in points], [v for _, v in expected], rtol=1e-6)
    train = EventAccumulator(str(tmp_path / "tensorboard" / "train"), size_guidance={"tensors": 0})
    train.Reload()
    assert len(train.Tensors("epoch_bits_per_dim")) == 2  # fit's training metric, per epoch


# ----------------------------------------------------------------------------- streamed data


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """train/ (24 images) and test/ (8 images) of 16x16 PNGs, each image's red value its number."""
    root = tmp_path_factory.mktemp("images")
    for split, numbers in (("train", range(24)), ("test", range(100, 108))):
        (root / split).mkdir()
        for number in numbers:
            pixels = np.zeros((16, 16, 3), np.uint8)
            pixels[..., 0] = number
            pixels[..., 1] = np.arange(16, dtype=np.uint8)[:, None] * 8  # not flat: a learnable image
            Image.fromarray(pixels).save(root / split / f"{number:03d}.png")
    return root


def test_a_streamed_run_trains_records_its_order_settings_and_a_resume_keeps_them(image_folder, tmp_path, monkeypatch):
    closed = []
    real_close = streaming.StreamingSource.close

    def close(source):
        closed.append(source.split)
        real_close(source)

    monkeypatch.setattr(streaming.StreamingSource, "close", close)
    output = tmp_path / "run"
    results = run_tiny(output, dataset=str(image_folder), streaming=True, shuffle_buffer=8, num_examples=24,
                       epochs=1, workers=2)
    assert results["steps"] == 3 and results["held_out_images"] == 8
    assert math.isfinite(results["held_out_bits_per_dim"])
    assert sorted(p.name for p in (output / "preset").iterdir()) == ["config.json", "metadata.json",
                                                                    "model.weights.h5"]
    assert RealNVP.from_preset(str(output / "preset")).filters == 4
    assert len(_metrics(output)) == 1
    assert "train" in closed  # the training stream is closed when training ends
    settings = json.loads((output / "run.json").read_text())["settings"]
    assert (settings["streaming"], settings["shuffle_buffer"], settings["num_examples"], settings["workers"]) == (
        True, 8, 24, 2)
    before = (output / "run.json").read_text()
    # Another order of the data: refused, naming the setting with both values, before any data is read.
    for changes, difference in (({"streaming": False}, "streaming: recorded true, requested false"),
                                ({"shuffle_buffer": 16}, "shuffle_buffer: recorded 8, requested 16"),
                                ({"num_examples": 20}, "num_examples: recorded 24, requested 20")):
        with pytest.raises(RunFolderError, match=difference):
            run_tiny(output, resume=True, epochs=1, **changes)
    assert (output / "run.json").read_text() == before
    # The worker count may change (the batches are the same): recorded. The run is finished, so
    # resuming only evaluates and writes the preset again, from the recorded streaming settings.
    resumed = run_tiny(output, resume=True, epochs=1, workers=1)
    assert resumed["held_out_bits_per_dim"] == pytest.approx(results["held_out_bits_per_dim"], abs=1e-5)
    record = json.loads((output / "run.json").read_text())
    assert record["resumes"][-1]["changes"] == {"workers": [2, 1]}
    assert record["settings"]["streaming"] is True and record["settings"]["workers"] == 1


def test_stream_settings_without_streaming_are_refused_when_the_run_is_made(tmp_path):
    for changes, flag in (({"shuffle_buffer": 8}, "--shuffle-buffer"), ({"num_examples": 24}, "--num-examples")):
        with pytest.raises(ValueError, match=f"{flag} apply to a streamed dataset only"):
            TrainingRun(**TINY_RUN, output=tmp_path, **changes)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        TrainingRun(**TINY_RUN, output=tmp_path, workers=0)
    with pytest.raises(ValueError, match="streaming must be True or False"):
        TrainingRun(**TINY_RUN, output=tmp_path, streaming="yes")
    assert not any(tmp_path.iterdir())


def test_the_tool_passes_the_data_and_metrics_options(capsys):
    args = train_tool.parse_args(["--streaming", "--shuffle-buffer", "64", "--num-examples", "1000", "--workers",
                                  "3", "--tensorboard"])
    assert (args.streaming, args.shuffle_buffer, args.num_examples, args.workers, args.tensorboard) == (
        True, 64, 1000, 3, True)
    defaults = train_tool.parse_args([])
    assert (defaults.streaming, defaults.shuffle_buffer, defaults.workers, defaults.tensorboard) == (
        None, None, None, False)  # None: the recorded one on --resume, the library's default otherwise
    with pytest.raises(SystemExit):
        train_tool.parse_args(["--help"])
    help_text = capsys.readouterr().out
    for flag in ("--streaming", "--shuffle-buffer", "--num-examples", "--workers", "--tensorboard", "metrics.csv"):
        assert flag in help_text, flag
    with pytest.raises(SystemExit):
        train_tool.parse_args(["--workers", "0"])
    assert "must be an integer >= 1" in capsys.readouterr().err


def test_the_checkpoint_history_and_metrics_agree_after_a_finished_run(tiny_run):
    entry = CheckpointManager(tiny_run[0] / "checkpoints").entries()[-1]
    _assert_rows_are_the_history(_metrics(tiny_run[0]), entry["history"])
