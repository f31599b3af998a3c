"""Feeding a fixed array of images to `model.fit` in full, freshly shuffled batches."""

from collections.abc import Iterator

import numpy as np
from numpy.typing import ArrayLike

from keras_realnvp.models.input_checks import check_count


def shuffled_batches(images: ArrayLike, batch_size: int, seed: int | None = None) -> Iterator[tuple[np.ndarray]]:
    """An endless generator of `(batch,)` tuples for `model.fit`, reshuffled at every pass.

    Each pass draws a new permutation and yields `len(images) // batch_size` full
    batches; the few images left over differ from pass to pass, so all images are
    used and every batch has the same shape. Fitting a numpy array directly would
    instead give a smaller last batch, which costs a second compilation of the
    training step (about 20 s on JAX for the default model) and a noisier batch-norm update.
    Keras wants a generator to yield tuples, hence the 1-tuples `(images,)`; being
    endless, it needs `steps_per_epoch` in `model.fit`.

    Args:
        images: array of at least `batch_size` examples (first axis).
        batch_size: examples per batch.
        seed: seed of the numpy Generator doing the shuffling.

    Example:

    >>> import numpy as np
    >>> batches = shuffled_batches(np.arange(10), batch_size=4, seed=0)
    >>> [next(batches)[0].shape for _ in range(3)]
    [(4,), (4,), (4,)]
    """
    images = np.asarray(images)
    batch_size = check_count(batch_size, "batch_size")
    if images.ndim == 0 or len(images) < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} images, got shape {images.shape}.")
    rng = np.random.default_rng(seed)
    num_batches = len(images) // batch_size
    while True:
        order = rng.permutation(len(images))
        for i in range(num_batches):
            yield (images[order[i * batch_size : (i + 1) * batch_size]],)
