"""Training runs: the epoch loop, checkpoints, resumption and non-finite steps behind `tools/train.py`."""

from keras_realnvp.training.checkpoints import CheckpointEvery, CheckpointManager
from keras_realnvp.training.finite_steps import (
    SkipNonFiniteSteps,
    TrainingDivergedError,
    guard_nonfinite_steps,
)
from keras_realnvp.training.trainer import TrainingRun

__all__ = [
    "CheckpointEvery",
    "CheckpointManager",
    "SkipNonFiniteSteps",
    "TrainingDivergedError",
    "TrainingRun",
    "guard_nonfinite_steps",
]
