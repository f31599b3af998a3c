"""What a finished epoch writes besides its checkpoint and metrics row: a sample grid and TensorBoard's logs.

`write_sample_grid` draws the held-out images beside model samples (`samples_epoch_NNN.png`);
`tensorboard_callback` is Keras' `TensorBoard` callback into the run's `tensorboard/`
folder, and `HeldOutScalars` adds the held-out bits/dim beside the training ones there.
"""

import math
import warnings
from pathlib import Path

import keras
import numpy as np

from keras_realnvp.visualization import image_grid, save_image_grid

# Held-out images (and as many samples) in an epoch's sample grid.
GRID_IMAGES = 64


def write_sample_grid(model, data, labels, path, seed) -> bool:
    """Write up to `GRID_IMAGES` held-out images `data` beside as many samples of `model` to the PNG `path`.

    A conditional model's samples are drawn with the `labels` of the held-out images shown.
    Samples that are not finite (weights that diverge can decode to inf/NaN) write no grid
    and give a `RuntimeWarning`; returns whether the grid was written.

    Example:

    >>> import tempfile, pathlib
    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 3), num_scales=1, filters=4, num_blocks=1, seed=0)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "samples_epoch_001.png"
    >>> write_sample_grid(model, np.zeros((4, 8, 8, 3), np.uint8), None, path, seed=0), path.exists()
    (True, True)
    """
    path = Path(path)
    count = min(GRID_IMAGES, len(data))
    shown = np.linspace(0, len(data) - 1, count).astype(int)
    # A conditional model's samples are drawn with the labels of the held-out images beside them.
    samples = model.sample(count, temperature=1.0, seed=seed, labels=None if labels is None else labels[shown])
    samples = keras.ops.convert_to_numpy(samples)
    if not np.isfinite(samples).all():
        # Weights that are finite but diverging can decode to inf/NaN; say so, keep training.
        warnings.warn(f"samples are not finite at this point of training; no sample grid {path.name}",
                      RuntimeWarning, stacklevel=2)
        return False
    real = data[shown]
    columns = int(math.ceil(math.sqrt(count)))
    pair = np.stack([image_grid(real, columns), image_grid(samples, columns)])
    save_image_grid(pair, path, num_columns=2, padding=4, scale=max(1, 128 // model.image_shape[0]))
    return True


def tensorboard_callback(folder):
    """Keras' `TensorBoard` callback writing per-epoch logs into `folder` (a run's `tensorboard/`).

    Per epoch: a run trains in chunks, one `fit` call each, and a batch-level log would
    restart its step count at each chunk. No graph: only TensorFlow's compiled step has one.
    Needs the tensorflow and tensorboard packages.

    Example:

    >>> import tempfile
    >>> tensorboard_callback(tempfile.mkdtemp()).update_freq
    'epoch'
    """
    return keras.callbacks.TensorBoard(log_dir=str(folder), update_freq="epoch", write_graph=False)


class HeldOutScalars:
    """The held-out bits/dim per epoch in TensorBoard (in `folder`, `tensorboard/validation`), beside the training ones.

    The file writer is made at the first `write` (with the `tf.summary` that the
    `TensorBoard` callback imports: no other TensorFlow import here); `close()` closes it.

    Example:

    >>> import tempfile
    >>> scalars = HeldOutScalars(tempfile.mkdtemp())
    >>> scalars.close()  # nothing written, nothing to close
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self._writer = None

    def write(self, board, epoch, mean) -> None:
        """The held-out bits/dim `mean` of `epoch` (0-based, as the callback `board` numbers epochs)."""
        summary = board.summary
        if self._writer is None:
            self._writer = summary.create_file_writer(str(self.folder))
        with self._writer.as_default():
            # The name of fit's training scalar: TensorBoard draws the two in one chart.
            summary.scalar("epoch_bits_per_dim", mean, step=epoch)
        self._writer.flush()

    def close(self) -> None:
        """Close the file writer, if one was made."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
