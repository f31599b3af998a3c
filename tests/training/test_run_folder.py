"""A run folder never loses or mixes work: one run at a time, no overwrites, checked resumes, whole presets."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import run_tiny, to_numpy

from keras_realnvp import RealNVP
from keras_realnvp.cli import train as train_tool
from keras_realnvp.training import CheckpointManager, RunFolderError, RunLock, TrainingRun
from keras_realnvp.training.run_folder import open_run_folder

ROOT = Path(__file__).resolve().parents[2]


def _files(folder):
    """Every file under `folder` with its bytes: what must stay exactly as it was."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture
def finished_run(tiny_run, tmp_path):
    """A copy of the session's finished tiny run (6 steps), to resume or overwrite without touching it."""
    folder = tmp_path / "run"
    shutil.copytree(tiny_run[0], folder)
    return folder


def _tool_error(capsys, *argv):
    """`(exit status, stderr lines)` of `keras-realnvp train argv` run in this process."""
    with pytest.raises(SystemExit) as raised:
        train_tool.main([str(a) for a in argv])
    return raised.value.code, capsys.readouterr().err.strip().splitlines()


def _assert_one_line_usage_error(status, lines, *parts):
    assert status == 2, (status, lines)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for part in parts:
        assert part in lines[0], (part, lines[0])


# ----------------------------------------------------------------------------- one run at a time

# A second process that holds a folder's lock: run_lock.py alone (standard library only), so it
# starts in a fraction of a second.
HOLDER = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("run_lock", sys.argv[1])
run_lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_lock)
run_lock.RunLock(sys.argv[2]).acquire()
print("locked", flush=True)
time.sleep(600)
"""


def test_a_folder_in_use_by_another_process_is_refused_and_a_killed_holder_does_not_block(tmp_path, capsys):
    folder = tmp_path / "run"
    module = ROOT / "keras_realnvp" / "training" / "run_lock.py"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(module), str(folder)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError, match=f"in use by another training run \\(PID {holder.pid} on host"):
            RunLock(folder).acquire()
        # A whole run, and the tool, stop before any work: nothing but the other run's lock file.
        with pytest.raises(RunFolderError, match=f"PID {holder.pid}"):
            run_tiny(folder)
        status, lines = _tool_error(capsys, "--output", folder, "--filters", 4, "--num-blocks", 1)
        _assert_one_line_usage_error(status, lines, f"PID {holder.pid}", "one run at a time")
        assert [p.name for p in folder.iterdir()] == ["run.lock"]
        assert json.loads((folder / "run.lock").read_text())["pid"] == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    assert holder.returncode == -signal.SIGKILL
    # The killed process's lock file is still there, but its lock died with it.
    assert json.loads((folder / "run.lock").read_text())["pid"] == holder.pid
    with RunLock(folder) as lock:
        assert lock.holder()["pid"] == os.getpid()
    assert not (folder / "run.lock").exists()  # released: the file goes too


def test_two_locks_in_one_process_exclude_each_other_and_release_removes_only_their_own_file(tmp_path):
    first = RunLock(tmp_path).acquire()
    with pytest.raises(RunFolderError, match=f"PID {os.getpid()}"):
        RunLock(tmp_path).acquire()
    first.release()
    second = RunLock(tmp_path).acquire()
    first.release()  # a second release does nothing, and never removes another holder's file
    assert (tmp_path / "run.lock").exists()
    with pytest.raises(RunFolderError):
        RunLock(tmp_path).acquire()
    second.release()
    assert not (tmp_path / "run.lock").exists()


def test_the_lock_is_let_go_when_a_run_ends_or_is_refused(tiny_run, finished_run):
    assert not (tiny_run[0] / "run.lock").exists()  # the fixture's run ended
    with pytest.raises(RunFolderError, match="batch_size"):
        run_tiny(finished_run, resume=True, batch_size=16)
    assert not (finished_run / "run.lock").exists()
    RunLock(finished_run).acquire().release()


# ----------------------------------------------------------------------------- no overwrites


def test_a_new_run_into_a_folder_holding_a_run_is_refused_and_touches_nothing(finished_run, capsys):
    (finished_run / "notes.txt").write_text("mine")
    before = _files(finished_run)
    with pytest.raises(RunFolderError, match=r"already holds a training run.*--resume.*--overwrite.*run\.old-"):
        run_tiny(finished_run)
    status, lines = _tool_error(capsys, "--output", finished_run, "--filters", 4, "--num-blocks", 1)
    _assert_one_line_usage_error(status, lines, "--resume", "--overwrite", "already holds a training run")
    assert _files(finished_run) == before  # checkpoints, state.json, preset, results: all as they were
    assert [p.name for p in finished_run.parent.iterdir()] == ["run"]  # and nothing moved aside


def test_overwrite_moves_the_old_run_aside_whole_and_starts_a_new_one(finished_run, capsys):
    (finished_run / "notes.txt").write_text("mine")
    before = _files(finished_run)
    run_tiny(finished_run, overwrite=True, stop_after_steps=1, learning_rate=5e-4)
    (aside,) = [p for p in finished_run.parent.iterdir() if p.name != "run"]
    assert aside.name.startswith("run.old-")
    assert f"moved the previous run in {finished_run} aside to {aside}" in capsys.readouterr().out
    # The old run, byte for byte, beside the new one; a file of the user's stays where it was.
    assert _files(aside) == {name: data for name, data in before.items() if name != "notes.txt"}
    assert (finished_run / "notes.txt").read_text() == "mine"
    assert not (finished_run / "preset").exists() and not (finished_run / "results.json").exists()
    entries = CheckpointManager(finished_run / "checkpoints").entries()
    assert [entry["step"] for entry in entries] == [1]  # only the new run's checkpoint
    # The learning rate asked for is the one used and recorded (0 is refused; see below).
    settings = json.loads((finished_run / "run.json").read_text())["settings"]
    assert settings["learning_rate"] == 5e-4 and settings["stop_after_steps"] == 1
    model, _ = CheckpointManager(finished_run / "checkpoints").restore()
    np.testing.assert_allclose(float(to_numpy(model.optimizer.learning_rate)), 5e-4, rtol=1e-6)


# ----------------------------------------------------------------------------- resuming with other settings


def test_a_resume_with_other_settings_is_refused_naming_each_with_both_values(finished_run, capsys):
    before = _files(finished_run)
    with pytest.raises(RunFolderError) as raised:
        run_tiny(finished_run, resume=True, preset="celeba_64", batch_size=16, seed=2, learning_rate=2e-3,
                 steps_per_epoch=4, eval_examples=32, overrides={"filters": 8, "num_blocks": 1})
    message = str(raised.value)
    for difference in ('preset: recorded "embedded_16", requested "celeba_64"', "batch_size: recorded 8, requested 16",
                       "seed: recorded 1, requested 2", "learning_rate: recorded 0.001, requested 0.002",
                       "steps_per_epoch: recorded 3, requested 4", "eval_examples: recorded 16, requested 32",
                       "model.filters: recorded 4, requested 8",
                       "model.image_shape: recorded [16, 16, 3], requested [64, 64, 3]"):
        assert difference in message, (difference, message)
    assert "num_blocks" not in message  # the same as recorded: not a difference
    # One override alone, through the tool: the recorded num_blocks still applies, filters differs.
    status, lines = _tool_error(capsys, "--output", finished_run, "--resume", "--filters", 8)
    _assert_one_line_usage_error(status, lines, "model.filters: recorded 4, requested 8")
    assert "num_blocks" not in lines[0]
    # Fewer epochs than the run has done: refused, not a preset "trained" for steps it did not count.
    with pytest.raises(RunFolderError, match=r"already reached step 6; --epochs 1 ends at step 3"):
        run_tiny(finished_run, resume=True, epochs=1)
    assert _files(finished_run) == before


def test_a_resume_with_only_the_folder_takes_every_setting_from_the_record(finished_run, tiny_run):
    # The tool's defaults (embedded_16's 64 filters, 4 epochs, 1000 held-out images...) would all
    # differ from this run's; left out, the recorded ones are used. The run is finished: resuming
    # only evaluates and writes the preset again, from the same weights.
    results = train_tool.run(train_tool.parse_args(["--output", str(finished_run), "--resume"]))
    recorded = tiny_run[1]
    for key in ("steps", "epochs", "batch_size", "seed", "held_out_images"):
        assert results[key] == recorded[key], key
    assert results["held_out_bits_per_dim"] == pytest.approx(recorded["held_out_bits_per_dim"], abs=1e-5)
    record = json.loads((finished_run / "run.json").read_text())
    assert record["resumes"][-1]["step"] == 6 and record["resumes"][-1]["changes"] == {}


def test_a_resume_may_train_longer_and_the_change_is_recorded(finished_run):
    # One more step (of a third epoch) is enough to show that training goes on.
    results = run_tiny(finished_run, resume=True, epochs=3, stop_after_steps=7)
    assert results["stopped_at_step"] == 7 and len(results["history"]) == 2
    assert CheckpointManager(finished_run / "checkpoints").entries()[-1]["step"] == 7
    record = json.loads((finished_run / "run.json").read_text())
    assert record["settings"]["epochs"] == 3 and record["settings"]["batch_size"] == 8
    (resumed,) = record["resumes"]
    assert resumed["step"] == 6 and resumed["changes"] == {"epochs": [2, 3], "stop_after_steps": [None, 7]}


def test_a_run_folder_without_a_record_is_still_checked_against_its_checkpoint(finished_run):
    (finished_run / "run.json").unlink()  # as a run started before run.json was written
    with pytest.raises(RunFolderError, match="checkpoint model.filters: recorded 4, requested 8"):
        run_tiny(finished_run, resume=True, overrides={"filters": 8, "num_blocks": 1})


# ----------------------------------------------------------------------------- whole presets


def test_a_failure_while_the_preset_is_written_leaves_the_previous_preset_whole(finished_run, monkeypatch):
    before = _files(finished_run / "preset")
    results_before = (finished_run / "results.json").read_bytes()

    def disk_full(self, *args, **kwargs):
        raise OSError("No space left on device (simulated)")

    # The weights are written last, after config.json and metadata.json: the failure comes mid-preset.
    with monkeypatch.context() as patch:
        patch.setattr(RealNVP, "save_weights", disk_full)
        with pytest.raises(OSError, match="simulated"):
            run_tiny(finished_run, resume=True)
        assert (finished_run / "preset.incomplete" / "metadata.json").exists()  # the half-written one, aside
    assert _files(finished_run / "preset") == before
    assert (finished_run / "results.json").read_bytes() == results_before
    previous = RealNVP.from_preset(str(finished_run / "preset"))
    # The next run clears the half-written folder and replaces the preset whole.
    run_tiny(finished_run, resume=True)
    assert sorted(p.name for p in finished_run.iterdir() if p.name.startswith("preset")) == ["preset"]
    rewritten = RealNVP.from_preset(str(finished_run / "preset"))
    for a, b in zip(previous.weights, rewritten.weights, strict=True):
        np.testing.assert_array_equal(to_numpy(b), to_numpy(a), err_msg=a.path)


@pytest.mark.parametrize("new_in_place", [False, True])
def test_a_preset_replacement_cut_short_between_its_renames_is_finished_by_the_next_run(tmp_path, new_in_place):
    folder = tmp_path / "run"
    (folder / "preset.replaced").mkdir(parents=True)  # the previous preset, renamed aside
    (folder / "preset.replaced" / "config.json").write_text("previous")
    if new_in_place:  # killed after the new one was renamed in, before the old one was removed
        (folder / "preset").mkdir()
        (folder / "preset" / "config.json").write_text("new")
    with open_run_folder(folder, resume=True)[0]:
        expected = "new" if new_in_place else "previous"
        assert (folder / "preset" / "config.json").read_text() == expected
        assert sorted(p.name for p in folder.iterdir()) == ["preset", "run.lock"]


# ----------------------------------------------------------------------------- settings checked first


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"learning_rate": -1.0}, r"learning_rate must be a number in \(0, 1\], got -1.0"),
        ({"learning_rate": 0.0}, r"learning_rate must be a number in \(0, 1\], got 0.0"),
        ({"learning_rate": 1e9}, r"learning_rate must be a number in \(0, 1\]"),
        ({"learning_rate": float("nan")}, r"learning_rate must be a number in \(0, 1\], got nan"),
        ({"learning_rate": float("inf")}, r"learning_rate must be a number in \(0, 1\], got inf"),
        ({"checkpoint_every": -1}, "checkpoint_every must be at least 0"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"seed": -1}, "seed must be at least 0"),
        ({"resume": True, "overwrite": True}, "pass one of them"),
        ({"resume": True}, "holds no training run to continue"),
    ],
)
def test_bad_settings_are_refused_when_the_run_is_made(tmp_path, changes, message):
    output = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        TrainingRun(output=output, **changes)
    assert not output.exists()  # refused before anything was created


def test_an_output_that_is_a_file_or_under_a_file_is_refused(tmp_path):
    file = tmp_path / "results"
    file.write_text("not a folder")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        TrainingRun(output=file)
    with pytest.raises(ValueError, match="cannot be created: .* is a file"):
        TrainingRun(output=file / "run")
    assert file.read_text() == "not a folder"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into any folder")
def test_an_output_whose_parent_is_not_writable_is_refused(tmp_path):
    parent = tmp_path / "read_only"
    parent.mkdir(mode=0o555)
    with pytest.raises(ValueError, match="is not writable"):
        TrainingRun(output=parent / "run")


@pytest.mark.parametrize(
    ("argv", "parts"),
    [
        (["--learning-rate", "nan"], ["learning_rate must be a number in (0, 1], got nan"]),
        (["--learning-rate", "1e9"], ["learning_rate must be a number in (0, 1]"]),
        (["--learning-rate", "0"], ["learning_rate must be a number in (0, 1], got 0.0"]),
        (["--seed", "-3"], ["seed must be at least 0, got -3"]),
        (["--preset", "nope"], ["Unknown preset 'nope'"]),
    ],
)
def test_the_tool_ends_a_usage_error_with_one_line_and_status_2(tmp_path, capsys, argv, parts):
    status, lines = _tool_error(capsys, "--output", tmp_path / "run", "--filters", 4, "--num-blocks", 1, *argv)
    _assert_one_line_usage_error(status, lines, *parts)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_the_tool_refuses_an_output_that_is_a_file_before_training(tmp_path, capsys):
    file = tmp_path / "out"
    file.write_text("")
    status, lines = _tool_error(capsys, "--output", file, "--filters", 4, "--num-blocks", 1)
    _assert_one_line_usage_error(status, lines, f"--output {file} is a file, not a folder")
    # argparse's own errors keep argparse's status 2 too.
    with pytest.raises(SystemExit) as raised:
        train_tool.main(["--output", str(file), "--resume", "--overwrite"])
    assert raised.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize("entry", ["metrics.csv", "tensorboard"])
def test_the_metrics_log_and_tensorboard_logs_are_part_of_the_run(tmp_path, entry):
    folder = tmp_path / "run"
    folder.mkdir()
    if entry == "metrics.csv":
        (folder / entry).write_text("epoch,step\n1,3\n")
    else:
        (folder / entry / "train").mkdir(parents=True)
    # A folder holding only them holds a run: a new run is refused, a resume looks for its checkpoint.
    with pytest.raises(RunFolderError, match=rf"already holds a training run \({entry}\)"):
        open_run_folder(folder)
    lock, aside = open_run_folder(folder, overwrite=True)
    with lock:
        assert [p.name for p in aside.iterdir()] == [entry] and [p.name for p in folder.iterdir()] == ["run.lock"]
