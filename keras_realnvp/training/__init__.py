"""Training runs: the epoch loop, checkpoints and resumption behind `tools/train.py`."""

from keras_realnvp.training.checkpoints import CheckpointEvery, CheckpointManager
from keras_realnvp.training.trainer import TrainingRun

__all__ = ["CheckpointEvery", "CheckpointManager", "TrainingRun"]
