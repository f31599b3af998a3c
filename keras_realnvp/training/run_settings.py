"""The settings of a training run: checked when it is made, filled when it runs, recorded, compared on resume.

`RunSettings` holds this half of `TrainingRun` (which inherits it): every setting is
checked when the run is made (`ValueError`); `run()` then fills those left `None` (from
`run.json` when resuming, else `DEFAULTS`), records them (`run.json`, through
`keras_realnvp.training.run_record`) and refuses a resume whose settings differ from the
recorded ones in anything that decides the model, the data or their order (`FIXED`).
"""

import datetime
import importlib.util
import json
import math
import numbers
import warnings
from pathlib import Path

import keras

from keras_realnvp.config_migration import rename_old_keys
from keras_realnvp.data.streaming import DEFAULT_BUFFER_SIZE
from keras_realnvp.training.run_folder import RunFolderError, check_output_folder
from keras_realnvp.training.run_record import setting_differences, write_settings

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
# with 1 worker the resume is exact (tests/cli/test_train_tool.py). More workers stay available.
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


def with_current_names(recorded: dict, renames: dict) -> dict:
    """A run's recorded settings with the `model` and `overrides` keys of an older version renamed.

    `renames` (`{old: new}`, the model class's `renamed_config_keys`) as
    `keras_realnvp.config_migration.rename_old_keys` applies them, so that a run recorded
    before a rename compares equal to the same model built now and resumes.

    Example:

    >>> with_current_names({"model": {"condition_dim": 2}, "overrides": {}, "seed": 0}, {"condition_dim": "label_dim"})
    {'model': {'label_dim': 2}, 'overrides': {}, 'seed': 0}
    """
    renamed = dict(recorded)
    for key in ("model", "overrides"):
        if isinstance(renamed.get(key), dict):
            renamed[key] = rename_old_keys(renamed[key], renames, where=f"run.json's {key!r}")
    return renamed


def utc_now() -> str:
    """The current UTC time to the second, ISO 8601: how a run's record dates its start and resumes.

    Example:

    >>> utc_now().endswith("+00:00")
    True
    """
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


class RunSettings:
    """The settings half of `TrainingRun`: checking, filling, recording and comparing its settings.

    Not used on its own: `TrainingRun` inherits it, and its methods read and fill the run's
    fields (`preset`, `epochs`, `seed`, ...).

    Example:

    >>> from keras_realnvp.training import TrainingRun
    >>> issubclass(TrainingRun, RunSettings)
    True
    >>> try:
    ...     TrainingRun("embedded_16", epochs=0)
    ... except ValueError as error:
    ...     print(error)
    epochs must be at least 1, got 0.
    """

    def _check_settings(self) -> None:
        """`ValueError` for any setting that cannot be right, before anything is done."""
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
        resumed = {"date": utc_now(), "step": step, "backend": keras.backend.backend()}
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

