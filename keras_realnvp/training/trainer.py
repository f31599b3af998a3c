"""The training run behind `tools/train.py`: presets, data, epochs, checkpoints, results, metrics.

Messages: progress (what is trained, each epoch's numbers, where the preset went) is printed to
stdout when `verbose`, beside Keras' own progress bars; warnings (a sample grid that could not
be drawn, a run folder without `run.json`) go through `warnings.warn`, whatever `verbose` is, so
that callers can filter them or turn them into errors.
"""

import dataclasses
import datetime
import importlib.util
import json
import math
import numbers
import time
import warnings
from pathlib import Path

import keras
import numpy as np

from keras_realnvp.backend.replicas import distribution_scope
from keras_realnvp.data.pipeline import TrainingBatches, evaluation_images
from keras_realnvp.data.sources import EMBEDDED, open_source, source_labels
from keras_realnvp.data.streaming import DEFAULT_BUFFER_SIZE, StreamingBatches
from keras_realnvp.evaluation import held_out_bits_per_dim
from keras_realnvp.models.realnvp import RealNVP
from keras_realnvp.training.checkpoints import CheckpointEvery, CheckpointManager
from keras_realnvp.training.finite_steps import SkipNonFiniteSteps
from keras_realnvp.training.optimizer import GlobalBatchAdam
from keras_realnvp.training.run_folder import (
    RunFolderError,
    check_output_folder,
    open_run_folder,
    read_settings,
    setting_differences,
    write_metrics,
    write_preset_atomically,
    write_settings,
    write_text_atomically,
)
from keras_realnvp.version import __version__
from keras_realnvp.visualization import image_grid, save_image_grid

GRID_IMAGES = 64
# A learning rate outside (0, MAX_LEARNING_RATE] is refused: Adam moves every weight by about the
# learning rate per step, and at 1 the tiny test model already ends at 1e8 bits/dim (measured).
MAX_LEARNING_RATE = 1.0
# The defaults of a new run; a resumed run takes the recorded values of settings left `None`.
DEFAULTS = {"preset": "embedded_16", "epochs": 3, "seed": 0, "checkpoint_every": 0, "eval_examples": 1000,
            "distribute": False, "max_nonfinite_steps": 10, "streaming": False}
# Settings that decide the model, the data or their order: a resumed run must keep them. Those
# requested as arguments are compared first; then the built `model` (its full config) and what the
# preset says of the data and the optimizer. `streaming` and the stream's buffer and size decide
# the order of the examples (a stream is buffer-shuffled, not permuted).
REQUESTED = ("preset", "dataset", "batch_size", "steps_per_epoch", "seed", "learning_rate", "eval_examples",
             "streaming", "shuffle_buffer", "num_examples")
FIXED = (*REQUESTED, "model", "dataset_spec", "optimizer")
# Loading threads when none are asked for. Not `default_workers()`: measured on PyTorch, a run
# stopped mid-epoch (--stop-after-steps 4 of 2 x 3 steps, --checkpoint-every 2) and resumed with 2
# workers ended with other weights (max |diff| 0.11) than the same run uninterrupted, although the
# uninterrupted runs with 1 and 2 workers agree exactly and Keras' adapter yields the same batches;
# with 1 worker the resume is exact (tests/test_train_tool.py). More workers stay available.
DEFAULT_WORKERS = 1
# What a run.json written before the streaming settings existed means by their absence.
_UNRECORDED = {"streaming": False, "shuffle_buffer": None, "num_examples": None}
# Settings a resumed run may change (each change is recorded in run.json); those left `None` on
# resume keep their recorded values, except `stop_after_steps` (`None`: run to the end), `workers`
# (`None`: `DEFAULT_WORKERS`) and `tensorboard` (off unless asked for).
CHANGEABLE = ("epochs", "checkpoint_every", "stop_after_steps", "max_nonfinite_steps", "distribute", "workers",
              "tensorboard")
# Model config entries that are not the architecture (`seed` is the run's, compared as such).
_NOT_ARCHITECTURE = ("name", "dtype", "trainable", "seed")


def model_settings(model) -> dict:
    """The model's config as a run records and compares it: every constructor argument but name, dtype, seed.

    Example:

    >>> from keras_realnvp import RealNVP
    >>> config = model_settings(RealNVP(image_shape=(8, 8, 1), num_scales=1, filters=4, num_blocks=1, seed=3))
    >>> config["filters"], config["image_shape"], "seed" in config or "name" in config
    (4, [8, 8, 1], False)
    """
    config = json.loads(json.dumps(model.get_config()))  # as run.json stores it: tuples as lists
    return {key: value for key, value in config.items() if key not in _NOT_ARCHITECTURE}


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _check_tensorboard() -> None:
    """`ValueError` unless TensorBoard logs can be written: Keras' `TensorBoard` callback needs both packages."""
    # find_spec imports nothing: TensorFlow takes seconds to import and is needed only once training starts.
    missing = [name for name in ("tensorflow", "tensorboard") if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(
            f"--tensorboard writes its logs with keras.callbacks.TensorBoard, which needs the tensorflow and "
            f"tensorboard packages (on every backend); {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
            f"not installed: pip install {' '.join(missing)}, or leave out --tensorboard (metrics.csv is always "
            "written)."
        )


def _same_source(recorded, requested) -> bool:
    # A preset or dataset given as a local folder may be named by another path to it.
    if recorded == requested:
        return True
    a, b = Path(str(recorded)), Path(str(requested))
    return a.is_dir() and b.is_dir() and a.resolve() == b.resolve()


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
            are the same for any count); default 1 (see `DEFAULT_WORKERS` for why not
            `keras_realnvp.data.pipeline.default_workers()`).
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
    ...                   batch_size=8, eval_examples=16, overrides={"filters": 4}, verbose=0)
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
        for name, low in (("epochs", 1), ("steps_per_epoch", 1), ("batch_size", 1), ("eval_examples", 1),
                          ("max_nonfinite_steps", 1), ("stop_after_steps", 1), ("checkpoint_every", 0),
                          ("seed", 0), ("shuffle_buffer", 1), ("num_examples", 1), ("workers", 1)):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, got {value!r}.")
            if value < low:
                raise ValueError(f"{name} must be at least {low}, got {value}.")
        if self.seed is not None and self.seed >= 2**32:  # what NumPy's and the backends' seeding accepts
            raise ValueError(f"seed must be below 2**32, got {self.seed}.")
        if self.learning_rate is not None:
            rate = self.learning_rate
            if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 < rate <= MAX_LEARNING_RATE:
                # `not 0 < nan` is True: NaN is refused here too; so is inf.
                raise ValueError(f"learning_rate must be a number in (0, {MAX_LEARNING_RATE:g}], got {rate!r}.")
            self.learning_rate = float(rate)
        for name in ("preset", "dataset"):
            if getattr(self, name) is not None and not (isinstance(getattr(self, name), str) and getattr(self, name)):
                raise ValueError(f"{name} must be a non-empty string, got {getattr(self, name)!r}.")
        if not isinstance(self.overrides, dict) or not all(isinstance(k, str) for k in self.overrides):
            raise ValueError(f"overrides must be a dict of constructor arguments, got {self.overrides!r}.")
        if self.resume and self.overwrite:
            raise ValueError("--resume continues the run in --output, --overwrite moves it aside: pass one of them.")
        for name in ("streaming", "tensorboard"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        if not self.resume:  # a resumed run may take `streaming` from its record: checked once it is known
            self._check_stream_settings(streaming=bool(self.streaming))
        if self.callbacks is not None:
            if not isinstance(self.callbacks, (list, tuple)) or not all(
                isinstance(c, keras.callbacks.Callback) for c in self.callbacks
            ):
                raise ValueError(f"callbacks must be a list of keras.callbacks.Callback, got {self.callbacks!r}.")
            self.callbacks = list(self.callbacks)
        if self.tensorboard:
            _check_tensorboard()
        self.output = Path(self.output)
        check_output_folder(self.output, resume=self.resume)

    def _check_stream_settings(self, streaming: bool) -> None:
        if not streaming:
            given = [f"--{name.replace('_', '-')}" for name in ("shuffle_buffer", "num_examples")
                     if getattr(self, name) is not None]
            if given:
                raise ValueError(f"{' and '.join(given)} apply to a streamed dataset only: pass --streaming too.")

    def _log(self, message):
        if self.verbose:
            print(message, flush=True)

    def _build(self):
        template = RealNVP.from_preset(self.preset, load_weights=False, seed=self.seed, **self.overrides)
        metadata = template.preset_metadata
        spec = metadata.get("dataset", {})
        training = metadata.get("training", {})
        return template, metadata, spec, training

    @staticmethod
    def _optimizer_settings(training) -> dict:
        """Adam's settings but the learning rate: the preset's."""
        optimizer_spec = training.get("optimizer", {})
        return {
            "beta_1": optimizer_spec.get("beta_1", 0.9),
            "beta_2": optimizer_spec.get("beta_2", 0.999),
            "epsilon": optimizer_spec.get("epsilon", 1e-8),
            "global_clipnorm": training.get("global_clipnorm", 100.0),
        }

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
            if self.distribute is None:  # needed before the model is built, inside the distribution
                recorded = record["settings"] if record else {}
                self.distribute = bool(recorded.get("distribute", DEFAULTS["distribute"]))
            self._sources, self._held_out_writer = [], None
            try:
                with distribution_scope(self.distribute) as self._replicas:
                    return self._run(record)
            finally:  # also on an error: a stream holds open files and `datasets`' reader threads
                for source in self._sources:
                    if hasattr(source, "close"):
                        source.close()
                if self._held_out_writer is not None:
                    self._held_out_writer.close()

    def _settle(self, recorded: dict | None) -> list:
        """Fill the settings left `None`: the `recorded` ones when resuming, else the defaults.

        Returns the `REQUESTED` settings that differ from the recorded ones (the model and what
        the preset decides are compared once the model is built).
        """
        differences = []
        if recorded is not None:
            recorded = {**_UNRECORDED, **recorded}
            for name in REQUESTED:
                value = getattr(self, name)
                if value is None:
                    setattr(self, name, recorded.get(name))
                elif name in ("preset", "dataset"):
                    if not _same_source(recorded.get(name), value):
                        differences += setting_differences(recorded, {name: value}, [name])
                else:
                    differences += setting_differences(recorded, {name: value}, [name])
            # Overrides given now change the recorded ones; the built model is compared as a whole.
            self.overrides = {**recorded.get("overrides", {}), **self.overrides}
            for name in ("epochs", "checkpoint_every", "max_nonfinite_steps"):
                if getattr(self, name) is None:
                    setattr(self, name, recorded.get(name))
        for name, value in DEFAULTS.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.workers is None:  # how this process loads, not what it trains on: never the recorded one
            self.workers = DEFAULT_WORKERS
        if not differences:  # else refused as such: e.g. `streaming=False` beside a recorded buffer size
            self._check_stream_settings(self.streaming)
        if self.streaming and self.shuffle_buffer is None:  # recorded as a number: a later default may change
            self.shuffle_buffer = DEFAULT_BUFFER_SIZE
        return differences

    def _settings(self, model, source, spec, training, steps_per_epoch) -> dict:
        """What `run.json` records of this run (see `FIXED` and `CHANGEABLE`)."""
        return {
            "preset": self.preset,
            "dataset": source,
            "dataset_spec": spec,
            "model": model_settings(model),
            "overrides": self.overrides,
            "batch_size": self.batch_size,
            "steps_per_epoch": steps_per_epoch,
            "seed": self.seed,
            "learning_rate": self.learning_rate,
            "optimizer": self._optimizer_settings(training),
            "eval_examples": self.eval_examples,
            "streaming": self.streaming,
            "shuffle_buffer": self.shuffle_buffer,
            "num_examples": self.num_examples,
            **{name: getattr(self, name) for name in CHANGEABLE},
        }

    def _check_resumed(self, record, settings, restored_model, step, steps_per_epoch):
        """Refuse a resume whose settings or checkpoint do not match the run; record what changed."""
        recorded = record["settings"] if record else None
        # The checkpoint holds the model that training continues: it must be the one asked for
        # (the only check of a run started before run.json was written).
        restored = model_settings(restored_model)
        self._refuse_differences(setting_differences(restored, settings["model"],
                                                     sorted({*restored, *settings["model"]}), "checkpoint model."))
        if step > self.epochs * steps_per_epoch:
            raise RunFolderError(
                f"--resume: the run in {self.output} already reached step {step}; --epochs {self.epochs} ends at step "
                f"{self.epochs * steps_per_epoch}. Pass at least --epochs {math.ceil(step / steps_per_epoch)}."
            )
        resumed = {"date": _utc_now(), "step": step, "backend": keras.backend.backend()}
        if recorded is None:
            warnings.warn(f"{self.output} has no run.json (a run started by an older version): its settings were "
                          "not recorded and only the model could be checked; recording the current ones",
                          stacklevel=4)
            record = {"settings": settings, "started": None, "resumes": []}
        else:
            resumed["changes"] = {name: [recorded.get(name), settings[name]] for name in CHANGEABLE
                                  if recorded.get(name) != settings[name]}
            record["settings"] = {**recorded, **{name: settings[name] for name in CHANGEABLE}}
        record.setdefault("resumes", []).append(resumed)
        write_settings(self.output, record)

    def _refuse_differences(self, differences):
        if differences:
            raise RunFolderError(
                f"--resume: the run in {self.output} was started with other settings, and a resumed run keeps every "
                f"setting that decides the model, the data or their order: {'; '.join(differences)}. Leave them out "
                "to use the recorded ones, or start a new run (--overwrite, or another --output)."
            )

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
        train_labels = eval_labels = label_names = None
        if model.condition_dim is not None:  # a conditional model trains on (image, label vector) pairs
            train_labels, label_names = source_labels(train_source, spec, model.condition_dim)
            eval_labels, _ = source_labels(eval_source, spec, model.condition_dim)
        evaluation = evaluation_images(eval_source, model.image_shape, preprocessing, self.eval_examples, eval_labels)
        eval_pixels, eval_labels = evaluation if eval_labels is not None else (evaluation, None)
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
            record = {"settings": settings, "started": _utc_now(), "backend": keras.backend.backend(),
                      "keras_realnvp_version": __version__, "resumes": []}
            write_settings(self.output, record)
        # From the history of the checkpoint continued: rows of epochs that checkpoint did not reach go.
        write_metrics(self.output, history)
        total = self.epochs * steps_per_epoch
        last = min(total, self.stop_after_steps or total)
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
        guard = SkipNonFiniteSteps(self.max_nonfinite_steps, verbose=self.verbose)
        guard.skipped_steps = list(skipped)
        state = lambda s: {"history": history, "skipped_steps": list(guard.skipped_steps)}  # noqa: E731
        board = self._tensorboard_callback()
        batches_class = StreamingBatches if self.streaming else TrainingBatches
        # What the epoch's fit calls in this process took, for its images/s and seconds.
        epoch_images, epoch_fit_seconds, epoch_start = 0, 0.0, None
        while step < last:
            epoch, offset = divmod(step, steps_per_epoch)
            chunk = min(steps_per_epoch - offset, last - step)
            batches = batches_class(
                train_source, model.image_shape, batch_size, self.seed, step, chunk, preprocessing, flips,
                labels=train_labels, workers=self.workers,
            )
            saver = CheckpointEvery(manager, self.checkpoint_every, step, state)
            guard.first_step = step
            if self.verbose:
                print(f"epoch {epoch + 1}/{self.epochs}" + (f" (from step {offset})" if offset else ""))
            if epoch_start is None:
                epoch_start = time.perf_counter()
            callbacks = [guard, saver, *([] if board is None else [board]), *(self.callbacks or [])]
            # shuffle=False: the batches are already in their seeded order; Keras would
            # otherwise permute the batch order with the global RNG, and resuming could not replay it.
            # One epoch numbered as the run's: callbacks (TensorBoard's steps) see the run's epochs.
            fit_start = time.perf_counter()
            fit = model.fit(batches, initial_epoch=epoch, epochs=epoch + 1, shuffle=False, verbose=self.verbose,
                            callbacks=callbacks)
            epoch_fit_seconds += time.perf_counter() - fit_start
            epoch_images += chunk * batch_size
            if guard.stopped:  # diverged: no checkpoint of this state, whose step is not `step + chunk`
                newest = manager.entries()[-1:]
                where = (f"The newest checkpoint, {manager.folder / newest[0]['file']} (step {newest[0]['step']}), "
                         "is intact" if newest else "No checkpoint was written")
                guard.message = f"{guard.message} {where}."
                guard.raise_if_stopped()
            step += chunk
            if step % steps_per_epoch == 0:
                mean, standard_error = held_out_bits_per_dim(model, eval_pixels, seed=self.seed, labels=eval_labels,
                                                             verbose=self.verbose)
                record = {
                    "epoch": epoch + 1,
                    "step": step,
                    "train_bits_per_dim": float(fit.history["bits_per_dim"][-1]),
                    "held_out_bits_per_dim": mean,
                    "held_out_standard_error": standard_error,
                    "skipped_steps": sum(step - steps_per_epoch < s <= step for s in guard.skipped_steps),
                    # float32's 7 digits: 0.001, not 0.0010000000474974513.
                    "learning_rate": float(f"{float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)):.7g}"),
                    "images_per_second": round(epoch_images / epoch_fit_seconds, 2) if epoch_fit_seconds else None,
                }
                history.append(record)
                if board is not None:
                    self._write_held_out(board, epoch, mean)
                self._log(
                    f"epoch {epoch + 1}: train {record['train_bits_per_dim']:.4f} bits/dim, "
                    f"held-out {mean:.4f} +- {standard_error:.4f}"
                )
                self._write_grid(model, eval_pixels, eval_labels, self.output / f"samples_epoch_{epoch + 1:03d}.png")
                record["seconds"] = round(time.perf_counter() - epoch_start, 3)
                epoch_images, epoch_fit_seconds, epoch_start = 0, 0.0, None
                write_metrics(self.output, history)
            manager.save(model, step, state(step))
        if step < total:
            self._log(f"stopped at step {step} of {total} (--stop-after-steps); --resume continues")
            return {"stopped_at_step": step, "history": history, "skipped_steps": list(guard.skipped_steps)}

        mean, standard_error = held_out_bits_per_dim(
            model, eval_pixels, num_draws=1, seed=self.seed, labels=eval_labels, verbose=self.verbose
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

    def _tensorboard_callback(self):
        """Keras' `TensorBoard` callback into `output/tensorboard` (one for every chunk), or `None`."""
        if not self.tensorboard:
            return None
        # Per epoch: a chunk is one fit call of one epoch, and a batch-level log would restart its
        # step count at each chunk. No graph: only TensorFlow's compiled step has one.
        return keras.callbacks.TensorBoard(log_dir=str(self.output / "tensorboard"), update_freq="epoch",
                                           write_graph=False)

    def _write_held_out(self, board, epoch, mean):
        """The held-out bits/dim of `epoch` (0-based, as the callback numbers epochs) beside fit's training ones."""
        summary = board.summary  # tf.summary, which the callback imports: no other TensorFlow import here
        if self._held_out_writer is None:
            self._held_out_writer = summary.create_file_writer(str(self.output / "tensorboard" / "validation"))
        with self._held_out_writer.as_default():
            # The name of fit's training scalar: TensorBoard draws the two in one chart.
            summary.scalar("epoch_bits_per_dim", mean, step=epoch)
        self._held_out_writer.flush()

    def _write_grid(self, model, data, labels, path):
        count = min(GRID_IMAGES, len(data))
        shown = np.linspace(0, len(data) - 1, count).astype(int)
        # A conditional model's samples are drawn with the labels of the held-out images beside them.
        samples = model.sample(count, temperature=1.0, seed=self.seed, labels=None if labels is None else labels[shown])
        samples = keras.ops.convert_to_numpy(samples)
        if not np.isfinite(samples).all():
            # Weights that are finite but diverging can decode to inf/NaN; say so, keep training.
            warnings.warn(f"samples are not finite at this point of training; no sample grid {path.name}",
                          RuntimeWarning, stacklevel=2)
            return
        real = data[shown]
        columns = int(math.ceil(math.sqrt(count)))
        pair = np.stack([image_grid(real, columns), image_grid(samples, columns)])
        save_image_grid(pair, path, num_columns=2, padding=4, scale=max(1, 128 // model.image_shape[0]))
