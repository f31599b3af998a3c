"""Checkpoints that survive a crash: written to a temporary file, then renamed.

A checkpoint is a whole `.keras` file (weights, optimizer state, the random generators'
states) plus a small JSON state file naming it with the global step reached. The state
file is replaced atomically after the checkpoint is complete, so it always names a
finished checkpoint; a checkpoint that fails to load is skipped for the one before it.
"""

import json
import os
from pathlib import Path

import keras

STATE_FILE = "state.json"
KEEP = 2


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class CheckpointManager:
    """Save and find the latest checkpoint of a training run in `folder`.

    Example:

    >>> import tempfile
    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
    >>> model.compile(optimizer="adam")
    >>> manager = CheckpointManager(tempfile.mkdtemp())
    >>> _ = manager.save(model, step=3, extra={"history": []})
    >>> restored, state = manager.restore()
    >>> state["step"], isinstance(restored, RealNVP)
    (3, True)
    """

    def __init__(self, folder):
        self.folder = Path(folder)

    def _state(self) -> dict:
        path = self.folder / STATE_FILE
        if not path.exists():
            return {"checkpoints": []}
        return json.loads(path.read_text())

    def save(self, model, step: int, extra: dict | None = None) -> Path:
        """Write the checkpoint of global step `step`; keeps the last two."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"step-{step:09d}.keras"
        tmp = self.folder / f"incomplete-{name}"
        model.save(tmp)
        os.replace(tmp, self.folder / name)
        state = self._state()
        entries = [e for e in state["checkpoints"] if e["file"] != name]
        entries.append({"file": name, "step": step, **(extra or {})})
        for old in entries[:-KEEP]:
            (self.folder / old["file"]).unlink(missing_ok=True)
        _atomic_write_text(self.folder / STATE_FILE, json.dumps({"checkpoints": entries[-KEEP:]}, indent=1))
        return self.folder / name

    def restore(self):
        """`(model, entry)` of the newest checkpoint that loads, or `None` if there is none.

        A checkpoint that cannot be read (truncated, corrupt) is reported and skipped.
        """
        for entry in reversed(self._state()["checkpoints"]):
            path = self.folder / entry["file"]
            try:
                model = keras.saving.load_model(path)
            except Exception as error:  # a truncated zip or h5 raises many kinds of errors
                print(f"warning: checkpoint {path} cannot be read ({type(error).__name__}: {error}); "
                      "using the one before")
                continue
            return model, entry
        return None


class CheckpointEvery(keras.callbacks.Callback):
    """Save a checkpoint every `every` global steps during `fit` (`first_step` = step of batch 0)."""

    def __init__(self, manager: CheckpointManager, every: int, first_step: int, extra_fn):
        super().__init__()
        self.manager = manager
        self.every = every
        self.first_step = first_step
        self.extra_fn = extra_fn

    def on_train_batch_end(self, batch, logs=None):
        step = self.first_step + batch + 1
        if self.every and step % self.every == 0:
            if hasattr(self.model, "jax_state_sync"):
                self.model.jax_state_sync()  # on JAX the weights live outside the model during fit
            self.manager.save(self.model, step, self.extra_fn(step))
