"""The training run behind `tools/train.py`: presets, data, epochs, checkpoints, results."""

import dataclasses
import json
import math
import time
from pathlib import Path

import keras
import numpy as np

from keras_realnvp.data.pipeline import TrainingBatches, evaluation_images
from keras_realnvp.data.sources import EMBEDDED, open_source, source_labels
from keras_realnvp.evaluation import held_out_bits_per_dim
from keras_realnvp.models.realnvp import RealNVP
from keras_realnvp.replicas import distribution_scope
from keras_realnvp.training.checkpoints import CheckpointEvery, CheckpointManager
from keras_realnvp.training.finite_steps import SkipNonFiniteSteps
from keras_realnvp.visualization import image_grid, save_image_grid

GRID_IMAGES = 64


@dataclasses.dataclass
class TrainingRun:
    """Everything a training run needs; `run()` executes it.

    Args:
        preset: a preset handle (built-in name, folder or `hf://`); its architecture,
            dataset and training settings are used. Its weights are not loaded.
        dataset: "embedded", a local image folder or a Hub dataset id; default: the
            preset's own dataset. A conditional preset (`condition_dim`, e.g.
            `celeba_64_conditional`) trains on `(image, label vector)` pairs: the dataset's
            attribute columns, or its classes one-hot (a local folder's class sub-folders, the
            embedded patches' two photos); see `keras_realnvp.data.sources.source_labels`. The
            held-out bits/dim are then those of `log p(x | y)`, the sample grids draw each sample
            with the labels of the held-out image beside it, and the preset's metadata records
            the `label_names`.
        output: folder for checkpoints, sample grids, `results.json` and the final
            preset folder `output/preset`.
        epochs, steps_per_epoch, batch_size: the schedule (`steps_per_epoch=None`: one
            pass over the training images).
        seed: seed of the initialization, data order, crops, flips and dequantization.
        resume: continue from the latest checkpoint in `output/checkpoints`.
        checkpoint_every: also checkpoint every this many steps (0: at epoch ends only).
        stop_after_steps: stop (as if interrupted) once this global step is reached.
        eval_examples: held-out images used for the bits/dim reported each epoch.
        learning_rate: Adam's learning rate (default: the preset's).
        distribute: data-parallel over all local devices, each taking an equal share of
            every batch (the batch size must be a multiple of the device count): JAX with
            `keras.distribution.DataParallel`, TensorFlow with a `tf.distribute.MirroredStrategy`
            over the local GPUs (else the logical CPU devices); not available on PyTorch. A step
            computes the single-device update of the same global batch: batch statistics,
            the loss and the dequantization noise are the global batch's. Under TensorFlow,
            Keras clips gradients (`global_clipnorm`) per replica, before they are summed.
        overrides: constructor arguments replacing the preset's (e.g. a tiny `filters`).
        verbose: Keras progress bars.
        max_nonfinite_steps: a step whose loss or gradients are not finite is skipped
            (weights and optimizer state unchanged), reported and recorded (`skipped_steps`
            in the results, checkpoints and per-epoch history); this many in a row stop the
            run with a `TrainingDivergedError`, leaving the newest checkpoint that of the
            last step applied.

    Example:

    >>> import tempfile
    >>> run = TrainingRun("embedded_16", output=tempfile.mkdtemp(), epochs=1, steps_per_epoch=2,
    ...                   batch_size=8, eval_examples=16, overrides={"filters": 4}, verbose=0)
    >>> results = run.run()
    >>> results["steps"], sorted(p.name for p in (run.output / "preset").iterdir())
    (2, ['config.json', 'metadata.json', 'model.weights.h5'])
    """

    preset: str = "embedded_16"
    dataset: str | None = None
    output: Path = Path("runs/default")
    epochs: int = 3
    steps_per_epoch: int | None = None
    batch_size: int | None = None
    seed: int = 0
    resume: bool = False
    checkpoint_every: int = 0
    stop_after_steps: int | None = None
    eval_examples: int = 1000
    learning_rate: float | None = None
    distribute: bool = False
    overrides: dict = dataclasses.field(default_factory=dict)
    verbose: int = 1
    max_nonfinite_steps: int = 10

    def __post_init__(self):
        self.output = Path(self.output)
        for name in ("epochs", "eval_examples", "max_nonfinite_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")

    def _log(self, message):
        if self.verbose:
            print(message, flush=True)

    def _build(self):
        template = RealNVP.from_preset(self.preset, load_weights=False, seed=self.seed, **self.overrides)
        metadata = template.preset_metadata
        spec = metadata.get("dataset", {})
        training = metadata.get("training", {})
        return template, metadata, spec, training

    def _compile(self, model, training):
        optimizer_spec = training.get("optimizer", {})
        optimizer = keras.optimizers.Adam(
            learning_rate=self.learning_rate or optimizer_spec.get("learning_rate", 1e-3),
            beta_1=optimizer_spec.get("beta_1", 0.9),
            beta_2=optimizer_spec.get("beta_2", 0.999),
            epsilon=optimizer_spec.get("epsilon", 1e-8),
            global_clipnorm=training.get("global_clipnorm", 100.0),
        )
        model.compile(optimizer=optimizer)

    def run(self) -> dict:
        """Train; returns the results (also written to `output/results.json`)."""
        with distribution_scope(self.distribute) as self._replicas:
            return self._run()

    def _run(self) -> dict:
        keras.utils.set_random_seed(self.seed)
        model, metadata, spec, training = self._build()
        source = self.dataset or (EMBEDDED if spec.get("source") == EMBEDDED else spec.get("hub_id"))
        if not source:
            raise ValueError(f"Preset {self.preset!r} names no dataset; pass --dataset (a folder or a Hub id).")
        preprocessing, flips = spec.get("preprocessing", "none"), bool(spec.get("flips", False))
        train_source, eval_source = open_source(source, spec, "train"), open_source(source, spec, "eval")
        train_labels = eval_labels = label_names = None
        if model.condition_dim is not None:  # a conditional model trains on (image, label vector) pairs
            train_labels, label_names = source_labels(train_source, spec, model.condition_dim)
            eval_labels, _ = source_labels(eval_source, spec, model.condition_dim)
        evaluation = evaluation_images(eval_source, model.image_shape, preprocessing, self.eval_examples, eval_labels)
        eval_pixels, eval_labels = evaluation if eval_labels is not None else (evaluation, None)
        batch_size = self.batch_size or training.get("batch_size", 64)
        if batch_size % self._replicas:
            raise ValueError(f"--distribute: the batch size {batch_size} must be a multiple of the {self._replicas} "
                             "devices, which each take an equal share of every batch.")
        steps_per_epoch = self.steps_per_epoch or max(1, len(train_source) // batch_size)
        self._compile(model, training)

        manager = CheckpointManager(self.output / "checkpoints")
        history, step, skipped = [], 0, []
        if self.resume:
            restored = manager.restore()
            if restored is None:
                raise ValueError(f"--resume: no checkpoint in {manager.folder}.")
            model, entry = restored
            step, history, skipped = entry["step"], entry.get("history", []), entry.get("skipped_steps", [])
            self._log(f"resumed from {manager.folder / entry['file']} at step {step}")
        total = self.epochs * steps_per_epoch
        last = min(total, self.stop_after_steps or total)
        self._log(
            f"backend {keras.backend.backend()}: preset {self.preset}, data {source} "
            f"({len(train_source)} train images, {len(eval_pixels)} held-out), {self.epochs} epochs x "
            f"{steps_per_epoch} steps, batch {batch_size}"
        )
        if step == 0:
            before, before_error = held_out_bits_per_dim(model, eval_pixels, seed=self.seed, labels=eval_labels)
            self._log(f"held-out bits/dim before training: {before:.4f} +- {before_error:.4f}")
        start = time.perf_counter()
        guard = SkipNonFiniteSteps(self.max_nonfinite_steps, verbose=self.verbose)
        guard.skipped_steps = list(skipped)
        state = lambda s: {"history": history, "skipped_steps": list(guard.skipped_steps)}  # noqa: E731
        while step < last:
            epoch, offset = divmod(step, steps_per_epoch)
            chunk = min(steps_per_epoch - offset, last - step)
            batches = TrainingBatches(
                train_source, model.image_shape, batch_size, self.seed, step, chunk, preprocessing, flips,
                labels=train_labels,
            )
            saver = CheckpointEvery(manager, self.checkpoint_every, step, state)
            guard.first_step = step
            if self.verbose:
                print(f"epoch {epoch + 1}/{self.epochs}" + (f" (from step {offset})" if offset else ""))
            # shuffle=False: the batches are already in their seeded order; Keras would
            # otherwise permute the batch order with the global RNG, and resuming could not replay it.
            fit = model.fit(batches, epochs=1, shuffle=False, verbose=self.verbose, callbacks=[guard, saver])
            if guard.stopped:  # diverged: no checkpoint of this state, whose step is not `step + chunk`
                newest = manager.entries()[-1:]
                where = (f"The newest checkpoint, {manager.folder / newest[0]['file']} (step {newest[0]['step']}), "
                         "is intact" if newest else "No checkpoint was written")
                guard.message = f"{guard.message} {where}."
                guard.raise_if_stopped()
            step += chunk
            if step % steps_per_epoch == 0:
                mean, standard_error = held_out_bits_per_dim(model, eval_pixels, seed=self.seed, labels=eval_labels)
                record = {
                    "epoch": epoch + 1,
                    "step": step,
                    "train_bits_per_dim": float(fit.history["bits_per_dim"][-1]),
                    "held_out_bits_per_dim": mean,
                    "held_out_standard_error": standard_error,
                    "skipped_steps": sum(step - steps_per_epoch < s <= step for s in guard.skipped_steps),
                }
                history.append(record)
                self._log(
                    f"epoch {epoch + 1}: train {record['train_bits_per_dim']:.4f} bits/dim, "
                    f"held-out {mean:.4f} +- {standard_error:.4f}"
                )
                self._write_grid(model, eval_pixels, eval_labels, self.output / f"samples_epoch_{epoch + 1:03d}.png")
            manager.save(model, step, state(step))
        if step < total:
            self._log(f"stopped at step {step} of {total} (--stop-after-steps); --resume continues")
            return {"stopped_at_step": step, "history": history, "skipped_steps": list(guard.skipped_steps)}

        mean, standard_error = held_out_bits_per_dim(
            model, eval_pixels, num_draws=1, seed=self.seed, labels=eval_labels
        )
        trained = {
            "dataset": source,
            "steps": step,
            "epochs": self.epochs,
            "batch_size": batch_size,
            "backend": keras.backend.backend(),
            "seed": self.seed,
            "held_out_bits_per_dim": mean,
            "held_out_standard_error": standard_error,
            "held_out_images": int(len(eval_pixels)),
            "evaluation_seed": self.seed,
        }
        if label_names is not None:  # what each entry of a conditional model's label vector means
            trained["label_names"] = label_names
        preset_metadata = {**{k: v for k, v in metadata.items() if k not in ("weights",)}, "trained": trained}
        preset_metadata.pop("parameter_count", None)
        folder = model.save_to_preset(self.output / "preset", preset_metadata)
        results = {**trained, "history": history, "skipped_steps": list(guard.skipped_steps),
                   "train_seconds": round(time.perf_counter() - start, 1),
                   "preset_folder": str(folder), "paper_bits_per_dim": metadata.get("paper_bits_per_dim")}
        (self.output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        self._log(f"held-out bits/dim {mean:.4f} +- {standard_error:.4f}; preset written to {folder}")
        return results

    def _write_grid(self, model, data, labels, path):
        count = min(GRID_IMAGES, len(data))
        shown = np.linspace(0, len(data) - 1, count).astype(int)
        # A conditional model's samples are drawn with the labels of the held-out images beside them.
        samples = model.sample(count, temperature=1.0, seed=self.seed, labels=None if labels is None else labels[shown])
        samples = keras.ops.convert_to_numpy(samples)
        if not np.isfinite(samples).all():
            # Weights that are finite but diverging can decode to inf/NaN; say so, keep training.
            print(f"warning: samples are not finite at this point of training; no sample grid {path.name}")
            return
        real = data[shown]
        columns = int(math.ceil(math.sqrt(count)))
        pair = np.stack([image_grid(real, columns), image_grid(samples, columns)])
        save_image_grid(pair, path, num_columns=2, padding=4, scale=max(1, 128 // model.image_shape[0]))
