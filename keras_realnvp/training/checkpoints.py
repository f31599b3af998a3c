"""Checkpoints that survive a crash: written to a temporary file, synced, then renamed.

A checkpoint is a whole `.keras` file (weights, optimizer state, the random generators'
states) plus a small JSON state file naming it with the global step reached and the
file's size and SHA-256. The checkpoint is flushed to disk before it is renamed into
place, and the state file is replaced atomically after that, so the state file always
names finished checkpoints. On restore a checkpoint whose size or hash does not match
(truncated, corrupt, missing) is set aside as `<name>.corrupt` and the one before it is
used; one that fails to load for another reason is skipped.

The folder belongs to one run at a time (the run folder's `RunLock`): a save removes the
leftovers of an earlier save that was killed, which would be another run's save in progress.
"""

import hashlib
import json
import os
import warnings
from pathlib import Path

import keras

from keras_realnvp.training.atomic_files import fsync_directory, write_text_atomically

STATE_FILE = "state.json"
KEEP = 2
_INCOMPLETE = "incomplete-"


def file_digest(path) -> tuple[int, str]:
    """`(size in bytes, SHA-256 hex digest)` of a file.

    Example:

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
    >>> _ = path.write_bytes(b"abc")
    >>> file_digest(path)[0], file_digest(path)[1][:16]
    (3, 'ba7816bf8f01cfea')
    """
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class CheckpointManager:
    """Save and find the latest checkpoint of a training run in `folder`.

    Example:

    >>> import tempfile
    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=1, filters=4, num_blocks=1)
    >>> model.compile(optimizer="adam")
    >>> manager = CheckpointManager(tempfile.mkdtemp())
    >>> _ = manager.save(model, step=3, extra={"history": []})
    >>> restored, state = manager.restore()
    >>> state["step"], isinstance(restored, RealNVP), len(state["sha256"])
    (3, True, 64)
    """

    def __init__(self, folder):
        self.folder = Path(folder)

    def _state(self) -> dict:
        path = self.folder / STATE_FILE
        if not path.exists():
            return {"checkpoints": []}
        return json.loads(path.read_text())

    def _write_state(self, entries) -> None:
        write_text_atomically(self.folder / STATE_FILE, json.dumps({"checkpoints": entries}, indent=1))

    def entries(self) -> list:
        """The checkpoints the state file names, oldest first (`file`, `step`, hash, extras)."""
        return self._state()["checkpoints"]

    def save(self, model, step: int, extra: dict | None = None) -> Path:
        """Write the checkpoint of global step `step`; keeps the last two."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"step-{step:09d}.keras"
        tmp = self.folder / f"{_INCOMPLETE}{name}"
        model.save(tmp)
        size, sha256 = file_digest(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())  # the data reaches the disk before the rename can
        os.replace(tmp, self.folder / name)
        fsync_directory(self.folder)
        entries = [e for e in self.entries() if e["file"] != name]
        entries.append({"file": name, "step": step, "bytes": size, "sha256": sha256, **(extra or {})})
        kept = entries[-KEEP:]
        self._write_state(kept)
        self._remove_stale({e["file"] for e in kept})
        return self.folder / name

    def _remove_stale(self, kept):
        # Checkpoints dropped from the state file, and leftovers of a save that was killed.
        for path in self.folder.iterdir():
            stale = path.name.startswith(_INCOMPLETE) or (
                path.name.startswith("step-") and path.suffix == ".keras" and path.name not in kept
            )
            if stale:
                path.unlink(missing_ok=True)

    def verify(self, entry) -> str | None:
        """Why the checkpoint of `entry` is not intact (missing, wrong size or hash), or `None`."""
        path = self.folder / entry["file"]
        if not path.exists():
            return "the file is missing"
        if "sha256" not in entry:  # written before hashes were recorded: nothing to check
            return None
        size, sha256 = file_digest(path)
        if size != entry["bytes"]:
            return f"it has {size} bytes, {entry['bytes']} were written (truncated?)"
        if sha256 != entry["sha256"]:
            return "its SHA-256 differs from the one recorded when it was written"
        return None

    def restore(self):
        """`(model, entry)` of the newest intact checkpoint that loads, or `None` if there is none.

        A checkpoint whose size or hash does not match the state file is reported (a
        `RuntimeWarning`), renamed to `<name>.corrupt` and dropped from the state file; one that fails to
        load for another reason is reported (likewise) and skipped.
        """
        entries = self.entries()
        for entry in reversed(entries):
            path = self.folder / entry["file"]
            problem = self.verify(entry)
            if problem is not None:
                warnings.warn(f"checkpoint {path} is damaged ({problem}); using the one before", RuntimeWarning,
                              stacklevel=2)
                if path.exists():
                    os.replace(path, path.with_name(path.name + ".corrupt"))
                self._write_state([e for e in self.entries() if e["file"] != entry["file"]])
                continue
            try:
                model = keras.saving.load_model(path)
            except Exception as error:  # a damaged file without a recorded hash raises many kinds
                warnings.warn(f"checkpoint {path} cannot be read ({type(error).__name__}: {error}); "
                              "using the one before", RuntimeWarning, stacklevel=2)
                continue
            return model, entry
        return None


class CheckpointEvery(keras.callbacks.Callback):
    """Save a checkpoint every `every` global steps during `fit` (`first_step` = step of batch 0).

    A step that `SkipNonFiniteSteps` skipped is not checkpointed: the newest checkpoint
    is always that of a step that was applied.

    Example:

    >>> import tempfile
    >>> import numpy as np
    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=1, filters=4, num_blocks=1)
    >>> model.compile(optimizer="adam")
    >>> manager = CheckpointManager(tempfile.mkdtemp())
    >>> saver = CheckpointEvery(manager, every=2, first_step=0, extra_fn=lambda: {})
    >>> images = np.random.uniform(0, 256, (16, 8, 8, 1)).astype("float32")
    >>> _ = model.fit(images, batch_size=4, shuffle=False, verbose=0, callbacks=[saver])
    >>> [entry["step"] for entry in manager.entries()]
    [2, 4]
    """

    def __init__(self, manager: CheckpointManager, every: int, first_step: int, extra_fn):
        super().__init__()
        self.manager = manager
        self.every = every
        self.first_step = first_step
        self.extra_fn = extra_fn

    def on_train_batch_end(self, batch, logs=None):
        from keras_realnvp.training.finite_steps import SKIPPED_KEY

        step = self.first_step + batch + 1
        if self.every and step % self.every == 0 and not (logs or {}).get(SKIPPED_KEY):
            if hasattr(self.model, "jax_state_sync"):
                self.model.jax_state_sync()  # on JAX the weights live outside the model during fit
            self.manager.save(self.model, step, self.extra_fn())
