"""Reliability of training on the current backend: non-finite steps, crashes, damaged checkpoints."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import TINY, TINY_RUN, run_tiny, to_numpy
from keras import ops

from keras_realnvp import RealNVP
from keras_realnvp.training import (
    CheckpointManager,
    SkipNonFiniteSteps,
    TrainingDivergedError,
    TrainingRun,
    finite_steps,
)
from keras_realnvp.training.finite_steps import guard_nonfinite_steps

ROOT = Path(__file__).resolve().parents[2]


def _assert_same_weights(folder, reference, atol=1e-6):
    model = RealNVP.from_preset(str(folder))
    for a, b in zip(reference.weights, model.weights, strict=True):
        np.testing.assert_allclose(to_numpy(b), to_numpy(a), atol=atol, rtol=0, err_msg=a.path)


@pytest.fixture
def reference(tiny_run):
    """The uninterrupted run (6 steps) every interrupted one must reproduce."""
    return RealNVP.from_preset(str(tiny_run[0] / "preset"))


class _Snapshots(keras.callbacks.Callback):
    """Every weight and optimizer variable (Adam's moments and iteration count) after each batch."""

    def __init__(self):
        super().__init__()
        self.after = []

    def on_train_batch_end(self, batch, logs=None):
        if hasattr(self.model, "jax_state_sync"):
            self.model.jax_state_sync()
        state = [*self.model.weights, *self.model.optimizer.variables]
        self.after.append({v.path: to_numpy(v).copy() for v in state})


def test_a_nonfinite_batch_is_skipped_with_weights_and_optimizer_state_bit_identical():
    model = RealNVP(image_shape=(8, 8, 1), num_scales=1, filters=4, num_blocks=1, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=100.0))
    images = np.random.default_rng(0).uniform(0, 256, (16, 8, 8, 1)).astype("float32")
    images[5, 3, 3, 0] = np.nan  # in the second of four batches: a NaN loss and NaN gradients
    guard, snapshots = SkipNonFiniteSteps(max_consecutive=2, verbose=0), _Snapshots()
    history = model.fit(images, batch_size=4, shuffle=False, verbose=0, callbacks=[guard, snapshots])

    assert guard.skipped_steps == [2] and not guard.stopped
    before, skipped, after = snapshots.after[0], snapshots.after[1], snapshots.after[2]
    assert any("moving_mean" in path for path in before) and any("momentum" in path for path in before)
    for path, value in before.items():  # exactly: weights, batch-norm averages, moments, iterations
        np.testing.assert_array_equal(skipped[path], value, err_msg=path)
    iterations = model.optimizer.iterations.path
    assert [int(s[iterations]) for s in snapshots.after] == [1, 1, 2, 3]  # training went on
    changed = [path for path in skipped if not np.array_equal(after[path], skipped[path])]
    assert len(changed) > len(skipped) // 2
    assert all(np.all(np.isfinite(v)) for v in snapshots.after[-1].values())
    # The epoch's metrics are those of the steps applied, and the skipped one is counted.
    assert np.isfinite(history.history["bits_per_dim"][-1]) and history.history["skipped_steps"] == [1]


@pytest.mark.skipif(keras.backend.backend() == "jax",
                    reason="JAX's guarded step is a pure function: it picks the state it was given or the one it made")
def test_the_guard_copies_weights_and_optimizer_state_after_the_forward_pass(monkeypatch):
    """The weights' and Adam's copies are not held through the forward pass, where memory peaks.

    The order is the program's (TensorFlow traces it once); the copies are recorded by
    variable, the forward pass by its loss. Batch-norm averages change in the forward pass
    and must be copied before it. Then a NaN batch is still undone bit for bit.
    """
    model = RealNVP(image_shape=(8, 8, 1), num_scales=1, filters=4, num_blocks=1, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    guard_nonfinite_steps(model)
    events = []
    snapshot, compute_loss = finite_steps._snapshot, RealNVP.compute_loss
    monkeypatch.setattr(finite_steps, "_snapshot", lambda v: events.append(id(v)) or snapshot(v))

    def spied_compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        events.append("loss")
        return compute_loss(self, x, y, y_pred, sample_weight, training)

    monkeypatch.setattr(RealNVP, "compute_loss", spied_compute_loss)
    images = np.random.default_rng(0).uniform(0, 256, (8, 8, 8, 1)).astype("float32")
    model.train_on_batch(images[:4])
    assert events.count("loss") == 1
    forward = events.index("loss")
    optimized = {id(v) for v in [*model.trainable_variables, *model.optimizer.variables]}
    averages = {id(v) for v in model.non_trainable_weights}
    assert optimized <= set(events[forward + 1:]) and not optimized & set(events[:forward])
    assert averages and averages <= set(events[:forward])
    before = [to_numpy(v).copy() for v in [*model.weights, *model.optimizer.variables]]
    images[4, 0, 0, 0] = np.nan
    logs = model.train_on_batch(images[4:], return_dict=True)
    assert logs[finite_steps.SKIPPED_KEY] == 1.0
    for old, v in zip(before, [*model.weights, *model.optimizer.variables], strict=True):
        np.testing.assert_array_equal(to_numpy(v), old, err_msg=v.path)


@pytest.mark.parametrize("bad", [None, np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", range(4))
def test_the_concatenated_finiteness_check_agrees_with_the_check_per_value(bad, where):
    """JAX's guard checks its state as one concatenation per dtype (XLA compiles it far faster)."""
    rng = np.random.default_rng(where)
    values = [rng.normal(size=(3, 4)).astype("float32"), np.float32(2.5), rng.normal(size=7).astype("float16"),
              ops.cast(rng.normal(size=(2, 2, 2)), "bfloat16")]
    if bad is not None:
        value = to_numpy(ops.cast(values[where], "float32")).copy()
        value.reshape(-1)[-1] = bad
        values[where] = ops.cast(value, keras.backend.standardize_dtype(values[where].dtype))
    values = [ops.convert_to_tensor(v) for v in values] + [ops.convert_to_tensor(np.array([7], "int32"))]
    expected = bad is None
    assert bool(to_numpy(finite_steps._all_finite(values))) is expected
    assert bool(to_numpy(finite_steps._all_finite_concatenated(values))) is expected
    assert bool(to_numpy(finite_steps._all_finite_concatenated([values[-1]])))  # no float value: nothing to check


def test_a_diverging_learning_rate_stops_cleanly_with_the_last_good_checkpoint(tmp_path, monkeypatch):
    # Adam's first step at a learning rate of 1e6 moves every weight by ~1e6: finite
    # weights whose next losses overflow. Every later step is skipped, and the second in a row stops.
    # TrainingRun refuses such a rate (above 1); the optimizer gets it behind its back.
    compile_ = TrainingRun._compile

    def diverging(self, model, training):
        compile_(self, model, training)
        model.optimizer.learning_rate.assign(1e6)

    monkeypatch.setattr(TrainingRun, "_compile", diverging)
    with pytest.raises(TrainingDivergedError, match=r"2 consecutive steps \(2-3\).*not finite") as raised:
        run_tiny(tmp_path, checkpoint_every=1, max_nonfinite_steps=2)
    message = str(raised.value)
    assert "after step 1" in message and "step-000000001.keras (step 1), is intact" in message
    manager = CheckpointManager(tmp_path / "checkpoints")
    assert [entry["step"] for entry in manager.entries()] == [1]  # nothing saved for the skipped steps
    assert manager.verify(manager.entries()[-1]) is None
    model, entry = manager.restore()
    assert entry["step"] == 1 and int(to_numpy(model.optimizer.iterations)) == 1
    assert all(np.all(np.isfinite(to_numpy(v))) for v in [*model.weights, *model.optimizer.variables])
    assert not (tmp_path / "results.json").exists() and not (tmp_path / "preset").exists()


def _train_command(output, *extra):
    schedule = [f"--{key.replace('_', '-')}={value}" for key, value in {**TINY_RUN, **TINY}.items()]
    arguments = [*schedule, "--checkpoint-every", "1", "--output", str(output), *extra]
    return [sys.executable, str(ROOT / "tools" / "train.py"), *arguments]


def _newest_step(folder):
    try:
        return json.loads((folder / "state.json").read_text())["checkpoints"][-1]["step"]
    except (FileNotFoundError, json.JSONDecodeError, IndexError, KeyError):
        return 0


def test_a_run_killed_at_a_random_point_with_its_newest_checkpoint_truncated_resumes_exactly(reference, tmp_path):
    """SIGKILL mid-run (mid-step or mid-save), truncate the newest checkpoint, resume: same weights.

    The truncation is caught by the size / SHA-256 recorded in `state.json` and the checkpoint
    before it is used; the batches, the dequantization noise (its generator state is in the
    checkpoint) and the optimizer state then replay the uninterrupted run's.
    """
    env = dict(os.environ)
    if keras.backend.backend() == "jax":  # the same JAX settings as this process (conftest: x64)
        import jax

        env["JAX_ENABLE_X64"] = str(bool(jax.config.jax_enable_x64))
    # At least two checkpoints exist at the kill: the newest is truncated, the one before resumed.
    target, delay = random.randint(2, 4), random.uniform(0.0, 0.2)
    where = f"killed after checkpoint {target} + {delay:.3f} s"  # the random kill point, on failure
    log = tmp_path / "killed.log"
    folder = tmp_path / "checkpoints"
    with open(log, "w") as out:
        process = subprocess.Popen(_train_command(tmp_path), stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 400
            while _newest_step(folder) < target and process.poll() is None:
                assert time.monotonic() < deadline, where
                time.sleep(0.01)
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait()
    assert process.returncode == -signal.SIGKILL, f"{where}: {log.read_text()[-2000:]}"
    assert not (tmp_path / "preset").exists()
    # The killed run's lock file stays behind; its lock died with the process and does not block the resume.
    assert json.loads((tmp_path / "run.lock").read_text())["pid"] == process.pid

    entries = CheckpointManager(folder).entries()
    assert len(entries) == 2 and entries[-1]["step"] >= target, (where, entries)
    newest = folder / entries[-1]["file"]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    resumed = subprocess.run(_train_command(tmp_path, "--resume"), capture_output=True, text=True, env=env,
                             timeout=400)
    assert resumed.returncode == 0, f"{where}: {resumed.stderr[-3000:]}"
    # The damaged checkpoint is a warning (stderr), the resume progress (stdout).
    assert f"{entries[-1]['file']} is damaged" in resumed.stderr and "truncated" in resumed.stderr, where
    assert f"{entries[0]['file']} at step {entries[0]['step']}" in resumed.stdout, (where, resumed.stdout[-2000:])
    assert (folder / f"{entries[-1]['file']}.corrupt").exists()
    assert not list(folder.glob("incomplete-*")), "a save cut short by the kill is cleaned up"
    # Bit for bit. On PyTorch that needs keras_realnvp.backend.vector_math: the resumed
    # process's first step is its first call of MKL's vector math, which on two threads can
    # return part of a `log` wrong (without it, 1 resumed run in 5 to 10 ended up to 1e-6 away).
    _assert_same_weights(tmp_path / "preset", reference, atol=0)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["steps"] == 6 and results["skipped_steps"] == []
    assert not (tmp_path / "run.lock").exists()
    assert [r["step"] for r in json.loads((tmp_path / "run.json").read_text())["resumes"]] == [entries[0]["step"]]
