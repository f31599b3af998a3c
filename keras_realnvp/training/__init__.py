"""Training runs: the epoch loop, checkpoints, resumption and non-finite steps behind `keras-realnvp train`.

A run's folder (`run_folder`) takes one run at a time (`RunLock`), records the run's settings for
`--resume` to check, and replaces its preset and results whole.
"""

from keras_realnvp.training.checkpoints import CheckpointEvery, CheckpointManager
from keras_realnvp.training.finite_steps import (
    SkipNonFiniteSteps,
    TrainingDivergedError,
    guard_nonfinite_steps,
)
from keras_realnvp.training.optimizer import GlobalBatchAdam
from keras_realnvp.training.run_folder import RunFolderError, RunLock
from keras_realnvp.training.trainer import TrainingRun

__all__ = [
    "CheckpointEvery",
    "CheckpointManager",
    "GlobalBatchAdam",
    "RunFolderError",
    "RunLock",
    "SkipNonFiniteSteps",
    "TrainingDivergedError",
    "TrainingRun",
    "guard_nonfinite_steps",
]
