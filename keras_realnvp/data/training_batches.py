"""Training batches with a position: every batch is a function of (seed, global step).

The order of the examples in pass `p` over the data is the permutation drawn from
`(seed, p)`, and the random crop / flip of example `k` in pass `p` comes from
`(seed, p, k)`. So the batch of any global step can be rebuilt on its own, and a run that
resumes at step `s` sees exactly the batches an uninterrupted run would have seen. Labels
(for a conditional model) are looked up by the same example indices, so they follow the
same order.

Loading runs in parallel with `workers=N`: `model.fit` then reads batches through Keras'
ordered enqueuer, N of them at a time and ahead of the training step, and hands them over
in step order. Each batch is still the same pure function of (seed, step), so the batches
are identical whatever the worker count. Threads (`use_multiprocessing=False`) suffice:
PIL releases the GIL while it decodes and resizes. Processes (`use_multiprocessing=True`)
fork the training process, which JAX warns may deadlock (it is multithreaded), and copy
every batch back through a pipe; on 2 shared cores they were slower than threads
(`keras_realnvp.benchmarks.data_loading` measures it; docs/training.md has the figures).
"""

import functools
import os

import keras
import numpy as np

from keras_realnvp.data.preprocessing import preprocess
from keras_realnvp.models.input_checks import check_count

# The default's bound: loading threads compete with the training step's own threads for the
# cores, and each holds a batch; a machine with many idle cores can be given more explicitly.
MAX_DEFAULT_WORKERS = 4


def default_workers() -> int:
    """The loading threads for training when none are asked for: one per core, 2 to `MAX_DEFAULT_WORKERS`.

    At least 2, so that batches are loaded ahead while the training step runs (on a GPU the
    cores are otherwise idle then), not between steps.

    Example:

    >>> 2 <= default_workers() <= MAX_DEFAULT_WORKERS
    True
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(2, min(MAX_DEFAULT_WORKERS, cores))


def check_loading(workers, use_multiprocessing, max_queue_size) -> None:
    """Refuse worker settings that Keras' `PyDataset` would misread (it takes 0 workers as serial).

    Example:

    >>> check_loading(2, False, 10)
    >>> check_loading(0, False, 10)
    Traceback (most recent call last):
    ...
    ValueError: workers must be a positive integer, got 0. With 1, each batch is loaded when it is needed.
    """
    try:
        check_count(workers, "workers")
    except ValueError as error:
        raise ValueError(f"{error} With 1, each batch is loaded when it is needed.") from None
    check_count(max_queue_size, "max_queue_size")
    if not isinstance(use_multiprocessing, bool):
        raise ValueError(f"use_multiprocessing must be True or False, got {use_multiprocessing!r}.")


def _source_labels(labels, source) -> np.ndarray:
    """`labels` as float32, checked to be `(len(source), K)`: one label vector per example of `source`."""
    labels = np.asarray(labels, dtype=np.float32)
    if labels.ndim != 2 or len(labels) != len(source):
        raise ValueError(
            f"labels must have shape ({len(source)}, K), one vector per image of {source.name}; got {labels.shape}."
        )
    return labels


class TrainingBatches(keras.utils.PyDataset):
    """`num_steps` uint8 batches for `model.fit`, starting at global step `start_step`.

    Each item is `(images,)`, or with `labels` `({"images": images, "labels": labels},)`,
    the input of a conditional `RealNVP`.

    Args:
        source: a random-access image source (`keras_realnvp.data.sources`).
        image_shape: `(H, W, C)` after preprocessing.
        batch_size: images per batch.
        seed: seed of the order and of the random preprocessing.
        start_step: the global step of the first batch.
        num_steps: number of batches.
        preprocessing: "none", "celeba" or "lsun".
        flips: random horizontal flips.
        labels: `(len(source), K)` label vectors of the source's examples (`source_labels`),
            or `None` for an unconditional model.
        workers: batches loaded at once, ahead of the training step (1: each when it is
            needed, between steps); `default_workers()` is a good choice for training.
        use_multiprocessing: load in forked processes instead of threads (see the module).
        max_queue_size: batches loaded ahead at most (with more than one worker).

    Example:

    >>> from keras_realnvp.data.sources import ArraySource
    >>> source = ArraySource(np.arange(10 * 48, dtype=np.uint8).reshape(10, 4, 4, 3), "toy")
    >>> batches = TrainingBatches(source, (4, 4, 3), batch_size=4, seed=0, start_step=0, num_steps=3)
    >>> len(batches), batches[2][0].shape
    (3, (4, 4, 4, 3))
    >>> later = TrainingBatches(source, (4, 4, 3), batch_size=4, seed=0, start_step=2, num_steps=1)
    >>> bool(np.array_equal(later[0][0], batches[2][0]))
    True
    >>> labelled = TrainingBatches(source, (4, 4, 3), 4, 0, 0, 3, labels=np.eye(10, dtype="float32"))
    >>> inputs = labelled[2][0]
    >>> bool(np.array_equal(inputs["images"], batches[2][0])), inputs["labels"].shape
    (True, (4, 10))
    >>> threaded = TrainingBatches(source, (4, 4, 3), 4, 0, 0, 3, workers=2)  # the same batches, loaded ahead
    >>> threaded.workers, bool(np.array_equal(threaded[2][0], batches[2][0]))
    (2, True)
    """

    def __init__(self, source, image_shape, batch_size, seed, start_step, num_steps, preprocessing="none",
                 flips=False, labels=None, workers=1, use_multiprocessing=False, max_queue_size=10):
        check_loading(workers, use_multiprocessing, max_queue_size)
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
        if len(source) < batch_size:
            raise ValueError(f"{source.name} has {len(source)} images, fewer than the batch size {batch_size}.")
        self.labels = None if labels is None else _source_labels(labels, source)
        self.source = source
        self.image_shape = tuple(image_shape)
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.num_steps = num_steps
        self.preprocessing = preprocessing
        self.flips = flips
        self.batches_per_pass = len(source) // batch_size

    @functools.lru_cache(maxsize=4)  # noqa: B019 (one object per fit call)
    def _order(self, data_pass):
        return np.random.default_rng((self.seed, data_pass)).permutation(len(self.source))

    def __len__(self):
        return self.num_steps

    def batch_indices(self, step):
        """The (pass, example indices) of global step `step`."""
        data_pass, position = divmod(step, self.batches_per_pass)
        order = self._order(data_pass)
        return data_pass, order[position * self.batch_size : (position + 1) * self.batch_size]

    def __getitem__(self, index):
        if not 0 <= index < self.num_steps:
            raise IndexError(index)
        data_pass, indices = self.batch_indices(self.start_step + index)
        images = [
            preprocess(
                self.source[int(k)], self.preprocessing, self.image_shape,
                np.random.default_rng((self.seed, data_pass, int(k))), self.flips,
            )
            for k in indices
        ]
        if self.labels is None:
            return (np.stack(images),)
        return ({"images": np.stack(images), "labels": self.labels[indices]},)


def evaluation_images(source, image_shape, preprocessing="none", limit=None, labels=None):
    """The first `limit` images of an evaluation source, preprocessed without randomness.

    With `labels` (`(len(source), K)`, from `source_labels`) it returns `(images, labels)`,
    the labels of those same images. A streaming source (`open_source(...,
    streaming=True)`) gives the first `limit` examples of its stream in stored order, with
    the labels of `source_labels`' `StreamLabels`.

    Example:

    >>> from keras_realnvp.data.sources import ArraySource
    >>> evaluation_images(ArraySource(np.zeros((5, 4, 4, 3), np.uint8), "z"), (4, 4, 3), limit=2).shape
    (2, 4, 4, 3)
    >>> images, labels = evaluation_images(ArraySource(np.zeros((5, 4, 4, 3), np.uint8), "z"), (4, 4, 3),
    ...                                    limit=2, labels=np.eye(5, dtype="float32"))
    >>> labels.tolist()
    [[1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0, 0.0]]
    """
    from keras_realnvp.data.streaming import StreamingSource, streaming_evaluation_images

    if isinstance(source, StreamingSource):
        return streaming_evaluation_images(source, image_shape, preprocessing, limit, labels)
    count = len(source) if limit is None else min(limit, len(source))
    if count == 0:
        raise ValueError(f"{source.name} has no images for evaluation.")
    images = np.stack([preprocess(source[i], preprocessing, image_shape, None, flips=False) for i in range(count)])
    if labels is None:
        return images
    return images, _source_labels(labels, source)[:count]
