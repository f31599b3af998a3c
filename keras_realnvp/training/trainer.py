"""The training run behind `keras-realnvp train`: presets, data, epochs, checkpoints, results, metrics.

`TrainingRun` is assembled from one concept per file: its settings (checked, filled,
recorded and compared on resume: `keras_realnvp.training.run_settings`), its epoch loop
(`keras_realnvp.training.epoch_loop`, writing through `epoch_outputs` and `metrics_log`)
and its folder (`run_folder`, `run_lock`, `run_record`, `atomic_files`). This file builds
the model and the data, and writes the final preset and results.

Messages: progress (what is trained, each epoch's numbers, where the preset went) is printed to
stdout when `verbose`, beside Keras' own progress bars; warnings (a sample grid that could not
be drawn, a run folder without `run.json`, a skipped non-finite step, a damaged checkpoint) go
through `warnings.warn`, so that callers can filter them or turn them into errors.
"""

import dataclasses
import json
import time
from pathlib import Path

import keras

from keras_realnvp.backend.replicas import distribution_scope
from keras_realnvp.data.held_out import held_out_data
from keras_realnvp.data.sources import EMBEDDED, dataset_kind, open_source, source_labels
from keras_realnvp.evaluation import held_out_bits_per_dim
from keras_realnvp.hub import Preset
from keras_realnvp.models.realnvp import RealNVP
from keras_realnvp.training.atomic_files import write_preset_atomically, write_text_atomically
from keras_realnvp.training.checkpoints import CheckpointManager
from keras_realnvp.training.epoch_loop import EpochLoop
from keras_realnvp.training.epoch_outputs import HeldOutScalars
from keras_realnvp.training.metrics_log import write_metrics
from keras_realnvp.training.optimizer import GlobalBatchAdam
from keras_realnvp.training.run_folder import RunFolderError, open_run_folder
from keras_realnvp.training.run_record import read_settings, setting_differences, write_settings
from keras_realnvp.training.run_settings import DEFAULTS, RunSettings, model_settings, utc_now, with_current_names
from keras_realnvp.version import __version__


@dataclasses.dataclass
class TrainingRun(RunSettings, EpochLoop):
    """Everything a training run needs; `run()` executes it.

    Args:
        preset: a preset handle (built-in name, folder or `hf://`); its architecture,
            dataset and training settings are used. Its weights are not loaded.
        dataset: "embedded", a local image folder or a Hub dataset id; default: the
            preset's own dataset. A conditional preset (`label_dim`, e.g.
            `celeba_64_conditional`) trains on `(image, label vector)` pairs: the dataset's
            attribute columns, or its classes one-hot (a local folder's class sub-folders, the
            embedded patches' two photos); see `keras_realnvp.data.sources.source_labels`. The
            held-out bits/dim are then those of `log p(x | y)`, the sample grids draw each sample
            with the labels of the held-out image beside it, and the preset's metadata records
            the `label_names`.
        output: the run folder: checkpoints, sample grids, `results.json`, the final preset
            folder `output/preset`, the run's settings `run.json`, the metrics log
            `metrics.csv`, TensorBoard logs `tensorboard/` (with `tensorboard`) and, while it
            runs, its lock `run.lock`. One run at a time: a second one is refused (naming the PID that holds
            the lock; a killed run's lock does not count). A new run is refused in a folder
            that holds another run's files unless `overwrite`. The preset folder and
            `results.json` are written beside their place and renamed into it, so a crash
            leaves the previous ones whole.
        epochs, steps_per_epoch, batch_size: the schedule (`steps_per_epoch=None`: one
            pass over the training images; default epochs 3, batch size the preset's).
        seed: seed of the initialization, data order, crops, flips and dequantization (default 0).
        resume: continue from the latest checkpoint in `output/checkpoints`. The settings
            left `None` are the recorded ones (`run.json`); any other setting that decides the
            model (the whole model config: preset and `overrides`), the data or their order
            (`dataset`, `batch_size`, `steps_per_epoch`, `seed`, `learning_rate`,
            `eval_examples`, `streaming`, `shuffle_buffer`, `num_examples`) must equal the
            recorded one, else a `ValueError` names each difference. `epochs`,
            `checkpoint_every`, `stop_after_steps`, `max_nonfinite_steps`, `distribute`,
            `workers` and `tensorboard` may change; the change is recorded in `run.json`.
        overwrite: a new run in a folder that holds another run first moves that run's files
            into a new sibling folder `<output>.old-<date>-<time>` (nothing is deleted).
        checkpoint_every: also checkpoint every this many steps (0, the default: at epoch ends only).
        stop_after_steps: stop (as if interrupted) once this global step is reached.
        eval_examples: held-out images used for the bits/dim reported each epoch (default 1000).
        learning_rate: Adam's learning rate, in (0, 1] (default: the preset's).
        distribute: data-parallel over all local devices, each taking an equal share of
            every batch (the batch size must be a multiple of the device count): JAX with
            `keras.distribution.DataParallel`, TensorFlow with a `tf.distribute.MirroredStrategy`
            over the local GPUs (else the logical CPU devices); not available on PyTorch. A step
            computes the single-device update of the same global batch: batch statistics,
            the loss, the dequantization noise and the gradient-norm clip
            (`GlobalBatchAdam`) are the global batch's.
        overrides: constructor arguments replacing the preset's (e.g. a tiny `filters`).
        verbose: Keras progress bars.
        max_nonfinite_steps: a step whose loss or gradients are not finite is skipped
            (weights and optimizer state unchanged), reported and recorded (`skipped_steps`
            in the results, checkpoints and per-epoch history); this many in a row stop the
            run with a `TrainingDivergedError`, leaving the newest checkpoint that of the
            last step applied (default 10).
        streaming: read the training and held-out images as a stream
            (`open_source(..., streaming=True)`, `StreamingBatches`; see
            `keras_realnvp.data.streaming`): a Hub dataset or local folder, nothing downloaded
            ahead; the order is buffer-shuffled, so it differs from the default random-access
            order for the same seed (default off).
        shuffle_buffer: examples in the stream's shuffle buffer (streaming only; default
            `keras_realnvp.data.streaming.DEFAULT_BUFFER_SIZE`, recorded as such).
        num_examples: the training split's size when the Hub does not record it (streaming only).
        workers: batches loaded at once, in threads, ahead of the training step (the batches
            are the same for any count); default 1 (see `run_settings.DEFAULT_WORKERS` for why not
            `keras_realnvp.data.training_batches.default_workers()`).
        callbacks: Keras callbacks, passed to every `model.fit` after the run's own (the
            non-finite step guard, the checkpoints, TensorBoard's). The run trains in chunks:
            each chunk (an epoch, or its part up to a `stop_after_steps` or since a resume) is
            one `fit` call of one epoch, whose epoch index is the run's (0-based), so
            `on_train_begin`/`on_train_end` come once per chunk.
        tensorboard: also write TensorBoard logs into `output/tensorboard` with
            `keras.callbacks.TensorBoard` (per epoch: `train/` the training metrics and the
            learning rate, `validation/` the held-out bits/dim as `epoch_bits_per_dim`). It
            needs the tensorflow and tensorboard packages, on every backend: without them the
            run is refused when it is made (`ValueError`).

    What the run folder gets, besides checkpoints and presets:

    - `metrics.csv`: one row per finished epoch with `epoch`, `step`, `train_bits_per_dim`,
      `held_out_bits_per_dim`, `held_out_standard_error`, `skipped_steps`, `learning_rate`,
      `images_per_second` (training images over the seconds of that epoch's `fit` calls,
      without the evaluation; the first epoch's includes compilation) and `seconds` (the
      epoch's wall-clock time in this process, evaluation and checkpoints included; an epoch
      a resume cut in two counts from the resume). It is rewritten from the history that the
      continued checkpoint recorded, so a resumed run has each epoch once.
    - With `verbose`, Keras progress bars for training and for the held-out evaluation, and
      the run's progress messages on stdout. Warnings go through `warnings.warn`.

    Every setting is checked when the run is made (`ValueError`); `run()` then fills those
    left `None` (from `run.json` when resuming, else the defaults) before any work starts.

    Example:

    >>> import tempfile
    >>> run = TrainingRun("embedded_16", output=tempfile.mkdtemp(), epochs=1, steps_per_epoch=2,
    ...                   batch_size=8, eval_examples=16, overrides={"num_scales": 1, "filters": 4}, verbose=0)
    >>> results = run.run()
    >>> results["steps"], sorted(p.name for p in (run.output / "preset").iterdir())
    (2, ['config.json', 'metadata.json', 'model.weights.h5'])
    >>> sorted(p.name for p in run.output.iterdir())
    ['checkpoints', 'metrics.csv', 'preset', 'results.json', 'run.json', 'samples_epoch_001.png']
    >>> header, *rows = (run.output / "metrics.csv").read_text().splitlines()  # one row per epoch
    >>> header.split(",")[:4], len(rows), rows[0].split(",")[:2]
    (['epoch', 'step', 'train_bits_per_dim', 'held_out_bits_per_dim'], 1, ['1', '2'])
    """

    preset: str | None = None
    dataset: str | None = None
    output: Path = Path("runs/default")
    epochs: int | None = None
    steps_per_epoch: int | None = None
    batch_size: int | None = None
    seed: int | None = None
    resume: bool = False
    checkpoint_every: int | None = None
    stop_after_steps: int | None = None
    eval_examples: int | None = None
    learning_rate: float | None = None
    distribute: bool | None = None
    overrides: dict = dataclasses.field(default_factory=dict)
    verbose: int = 1
    max_nonfinite_steps: int | None = None
    overwrite: bool = False
    streaming: bool | None = None
    shuffle_buffer: int | None = None
    num_examples: int | None = None
    workers: int | None = None
    callbacks: list | None = None
    tensorboard: bool = False

    def __post_init__(self):
        self._check_settings()

    def _log(self, message):
        if self.verbose:
            print(message, flush=True)

    def _build(self):
        preset = Preset.open(self.preset, RealNVP, need_weights=False)
        template = preset.build(load_weights=False, seed=self.seed, **self.overrides)
        return template, preset.metadata, preset.dataset, dict(preset.metadata.get("training", {}))

    def _compile(self, model, training):
        # The clip engages at every step of the nats-per-image objective: under tf.distribute it
        # must see the global batch's gradient, not each replica's share (GlobalBatchAdam).
        optimizer = GlobalBatchAdam(learning_rate=self.learning_rate, **self._optimizer_settings(training))
        model.compile(optimizer=optimizer)

    def run(self) -> dict:
        """Train; returns the results (also written to `output/results.json`).

        The run holds the folder's lock from start to end; see the class docstring for what
        is refused and what is recorded.
        """
        lock, moved = open_run_folder(self.output, resume=self.resume, overwrite=self.overwrite)
        with lock:
            if moved is not None:  # said whatever `verbose` is: where the previous run went
                print(f"--overwrite: moved the previous run in {self.output} aside to {moved}", flush=True)
            record = read_settings(self.output) if self.resume else None
            if record is not None:  # model settings recorded under an older name get the current one
                record["settings"] = with_current_names(record["settings"], RealNVP.renamed_config_keys)
            if self.distribute is None:  # needed before the model is built, inside the distribution
                recorded = record["settings"] if record else {}
                self.distribute = bool(recorded.get("distribute", DEFAULTS["distribute"]))
            self._sources = []
            self._held_out_scalars = HeldOutScalars(self.output / "tensorboard" / "validation")
            try:
                with distribution_scope(self.distribute) as self._replicas:
                    return self._run(record)
            finally:  # also on an error: a stream holds open files and `datasets`' reader threads
                for source in self._sources:
                    if hasattr(source, "close"):
                        source.close()
                self._held_out_scalars.close()

    def _run(self, record) -> dict:
        differences = self._settle(record["settings"] if record else None)
        keras.utils.set_random_seed(self.seed)
        model, metadata, spec, training = self._build()
        if record is not None:  # before any data is read: the model, and what the preset says of data and optimizer
            built = {"dataset_spec": spec, "optimizer": self._optimizer_settings(training)}
            recorded, architecture = record["settings"], model_settings(model)
            differences += setting_differences(recorded["model"], architecture,
                                               sorted({*recorded["model"], *architecture}), "model.")
            differences += setting_differences(recorded, built, ["dataset_spec", "optimizer"])
        self._refuse_differences(differences)
        source = self.dataset or (EMBEDDED if spec.get("source") == EMBEDDED else spec.get("hub_id"))
        if not source:
            raise ValueError(f"Preset {self.preset!r} names no dataset; pass --dataset (a folder or a Hub id).")
        preprocessing, flips = spec.get("preprocessing", "none"), bool(spec.get("flips", False))
        if self.streaming:
            stream = {"streaming": True, "buffer_size": self.shuffle_buffer}
            train_source = open_source(source, spec, "train", num_examples=self.num_examples, **stream)
            self._sources.append(train_source)
            eval_source = open_source(source, spec, "eval", **stream)
        else:
            train_source, eval_source = open_source(source, spec, "train"), open_source(source, spec, "eval")
        self._sources.append(eval_source)
        train_labels = label_names = None
        if model.label_dim is not None:  # a conditional model trains on (image, label vector) pairs
            train_labels, label_names = source_labels(train_source, spec, model.label_dim)
        eval_pixels, eval_labels, _ = held_out_data(eval_source, spec, model.image_shape, self.eval_examples,
                                                   label_dim=model.label_dim)
        self.batch_size = batch_size = self.batch_size or training.get("batch_size", 64)
        if batch_size % self._replicas:
            raise ValueError(f"--distribute: the batch size {batch_size} must be a multiple of the {self._replicas} "
                             "devices, which each take an equal share of every batch.")
        steps_per_epoch = self.steps_per_epoch or max(1, len(train_source) // batch_size)
        if self.learning_rate is None:
            self.learning_rate = float(training.get("optimizer", {}).get("learning_rate", 1e-3))
        self._compile(model, training)
        settings = self._settings(model, source, spec, training, steps_per_epoch)

        manager = CheckpointManager(self.output / "checkpoints")
        history, step, skipped = [], 0, []
        if self.resume:
            restored = manager.restore()
            if restored is None:
                raise RunFolderError(f"--resume: no checkpoint in {manager.folder} to continue from; start the run "
                                     "again with --overwrite (which moves this one aside).")
            model, entry = restored
            step, history, skipped = entry["step"], entry.get("history", []), entry.get("skipped_steps", [])
            self._check_resumed(record, settings, model, step, steps_per_epoch)
            self._log(f"resumed from {manager.folder / entry['file']} at step {step}")
        else:
            record = {"settings": settings, "started": utc_now(), "backend": keras.backend.backend(),
                      "keras_realnvp_version": __version__, "resumes": []}
            write_settings(self.output, record)
        # From the history of the checkpoint continued: rows of epochs that checkpoint did not reach go.
        write_metrics(self.output, history)
        self._log(
            f"backend {keras.backend.backend()}: preset {self.preset}, data {source} "
            f"({len(train_source)} train images, {len(eval_pixels)} held-out), {self.epochs} epochs x "
            f"{steps_per_epoch} steps, batch {batch_size}"
        )
        if step == 0:
            before, before_error = held_out_bits_per_dim(model, eval_pixels, seed=self.seed, labels=eval_labels,
                                                         verbose=self.verbose)
            self._log(f"held-out bits/dim before training: {before:.4f} +- {before_error:.4f}")
        start = time.perf_counter()
        step, guard = self._train_epochs(model, manager, train_source, train_labels, eval_pixels, eval_labels,
                                         preprocessing, flips, batch_size, steps_per_epoch, step, history, skipped)
        total = self.epochs * steps_per_epoch
        if step < total:
            self._log(f"stopped at step {step} of {total} (--stop-after-steps); --resume continues")
            return {"stopped_at_step": step, "history": history, "skipped_steps": list(guard.skipped_steps)}

        mean, standard_error = held_out_bits_per_dim(
            model, eval_pixels, num_draws=1, seed=self.seed, labels=eval_labels, verbose=self.verbose
        )
        trained = {
            "dataset": source,
            "dataset_kind": dataset_kind(source),
            "steps": step,
            "epochs": self.epochs,
            "batch_size": batch_size,
            "backend": keras.backend.backend(),
            "seed": self.seed,
            "held_out_bits_per_dim": mean,
            "held_out_standard_error": standard_error,
            "held_out_images": int(len(eval_pixels)),
            "evaluation_seed": self.seed,
            "objective": model.training_objective(),
        }
        if label_names is not None:  # what each entry of a conditional model's label vector means
            trained["label_names"] = label_names
        preset_metadata = {**{k: v for k, v in metadata.items() if k not in ("weights",)}, "trained": trained}
        preset_metadata.pop("parameter_count", None)
        folder = write_preset_atomically(model, self.output / "preset", preset_metadata)
        results = {**trained, "history": history, "skipped_steps": list(guard.skipped_steps),
                   "train_seconds": round(time.perf_counter() - start, 1),
                   "preset_folder": str(folder), "paper_bits_per_dim": metadata.get("paper_bits_per_dim")}
        write_text_atomically(self.output / "results.json", json.dumps(results, indent=2) + "\n")
        self._log(f"held-out bits/dim {mean:.4f} +- {standard_error:.4f}; preset written to {folder}")
        return results
