"""A streamed training split as batches for `model.fit`: `StreamingBatches`, read in step order.

The streaming counterpart of `keras_realnvp.data.training_batches.TrainingBatches`: the
batch of every global step is still a pure function of (seed, step), now of the shuffled
stream of its pass (see `keras_realnvp.data.streaming` for how that order differs from the
random-access one, and what a resume costs). The stream is read in step order by one
reader per (source, seed, columns, batch size), under a lock; the decoding and
preprocessing of different batches run in parallel threads.
"""

import threading
from itertools import islice

import keras
import numpy as np

from keras_realnvp.data.preprocessing import preprocess
from keras_realnvp.data.streaming import StreamingSource, StreamLabels
from keras_realnvp.data.training_batches import check_loading
from keras_realnvp.models.input_checks import check_count


class StreamingBatches(keras.utils.PyDataset):
    """`num_steps` uint8 batches of a `StreamingSource` for `model.fit`, starting at global step `start_step`.

    The streaming counterpart of `TrainingBatches`, with the same arguments and items:
    `(images,)`, or `({"images": images, "labels": labels},)` with `labels` (a
    `StreamLabels` from `source_labels`). Step `s` is batch `s mod batches_per_pass` of the
    shuffled stream of pass `s // batches_per_pass` (see the module for how that order
    differs from `TrainingBatches`'). The stream is read in step order by one reader per
    (source, seed, batch size), which the `StreamingBatches` of consecutive chunks of a run
    share: the next chunk continues where the last one stopped. A step behind the stream
    (a resumed run's first, or one read out of order) reopens its pass and skips to it,
    undecoded. The batches of the last few steps are kept, so that the TensorFlow
    backend, which reads the first two to learn their shapes and then starts over, does
    not reopen the stream.

    Args:
        source: a `StreamingSource` ("train").
        image_shape, batch_size, seed, start_step, num_steps, preprocessing, flips: as
            for `TrainingBatches`.
        labels: a `StreamLabels` (from `source_labels`), or `None`.
        workers: batches decoded and preprocessed at once, in threads (the stream itself
            is read in step order); the batches are the same for any number.
        use_multiprocessing: must be False: a stream cannot be shared between processes.
        max_queue_size: batches loaded ahead at most (with more than one worker).

    Example:

    >>> import datasets, io
    >>> from PIL import Image
    >>> def png(value):
    ...     buffer = io.BytesIO()
    ...     Image.new("RGB", (4, 4), color=(value,) * 3).save(buffer, format="PNG")
    ...     return {"bytes": buffer.getvalue(), "path": None}
    >>> table = datasets.Dataset.from_dict({"image": [png(v) for v in range(10)]})
    >>> stream = table.cast_column("image", datasets.Image()).to_iterable_dataset()
    >>> source = StreamingSource(stream, "image", "ten images", "train", 10, buffer_size=4)
    >>> batches = StreamingBatches(source, (4, 4, 3), batch_size=4, seed=0, start_step=0, num_steps=6)
    >>> len(batches), batches.batches_per_pass, batches[5][0].shape
    (6, 2, (4, 4, 4, 3))
    >>> resumed = StreamingBatches(source, (4, 4, 3), 4, seed=0, start_step=5, num_steps=1)
    >>> bool(np.array_equal(resumed[0][0], batches[5][0]))
    True
    >>> source.close()  # training is over: close the open stream
    """

    def __init__(self, source, image_shape, batch_size, seed, start_step, num_steps, preprocessing="none",
                 flips=False, labels=None, workers=1, use_multiprocessing=False, max_queue_size=10):
        check_loading(workers, use_multiprocessing, max_queue_size)
        if use_multiprocessing:
            raise ValueError(
                "StreamingBatches loads in threads only (use_multiprocessing=False): the stream is read in step "
                "order by one reader, which processes cannot share."
            )
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max_queue_size)
        if not isinstance(source, StreamingSource):
            raise ValueError(
                f"StreamingBatches reads a StreamingSource (open_source(..., streaming=True)), got "
                f"{type(source).__name__}; use TrainingBatches for a random-access source."
            )
        if source.split != "train":
            raise ValueError(f"StreamingBatches trains on a 'train' split; {source.name} is the {source.split!r} one.")
        check_count(batch_size, "batch_size")
        if len(source) < batch_size:
            raise ValueError(f"{source.name} has {len(source)} images, fewer than the batch size {batch_size}.")
        if labels is not None and not isinstance(labels, StreamLabels):
            raise ValueError(
                f"The labels of a streaming source come from source_labels (a StreamLabels), got "
                f"{type(labels).__name__}."
            )
        self.source = source
        self.image_shape = tuple(image_shape)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.start_step = int(start_step)
        self.num_steps = int(num_steps)
        self.preprocessing = preprocessing
        self.flips = flips
        self.labels = labels
        self.batches_per_pass = len(source) // batch_size
        # Keras' enqueuer asks for at most max_queue_size + workers steps ahead of the one trained.
        columns = None if labels is None else labels.columns
        key = (self.seed, None if columns is None else tuple(columns), self.batch_size)
        self._reader = source.shared_reader(
            key, lambda: _PassReader(source, self.seed, columns, self.batch_size, self.batches_per_pass))
        self._reader.keep_at_least(max_queue_size + workers + 2)

    def __len__(self):
        return self.num_steps

    def __getitem__(self, index):
        if not 0 <= index < self.num_steps:
            raise IndexError(index)
        step = self.start_step + index
        records = self._reader.records(step)
        data_pass, position = divmod(step, self.batches_per_pass)
        first = position * self.batch_size
        images = np.stack([
            preprocess(
                self.source.image(record, f"example {first + j} of pass {data_pass}"), self.preprocessing,
                self.image_shape, np.random.default_rng((self.seed, data_pass, first + j)), self.flips,
            )
            for j, record in enumerate(records)
        ])
        if self.labels is None:
            return (images,)
        return ({"images": images, "labels": self.labels(records)},)


class _PassReader:
    """Reads the shuffled stream of a source in step order for batches of one seed, columns and size.

    One thread reads at a time, under a lock; the batches of the steps read past are kept
    (`keep` of them) for the workers that ask for them next and for the TensorFlow
    backend's re-read of the first two. A step behind the stream reopens its pass.
    """

    def __init__(self, source, seed, columns, batch_size, batches_per_pass):
        self.source = source
        self.seed = seed
        self.columns = columns
        self.batch_size = batch_size
        self.batches_per_pass = batches_per_pass
        self.keep = 1
        self.lock = threading.Lock()
        self.position = None  # [data_pass, next position in the pass (in batches), iterator]
        self.kept = {}

    def keep_at_least(self, keep: int) -> None:
        """Keep the batches of at least `keep` steps around the one asked for (the loaders' look-ahead)."""
        with self.lock:
            self.keep = max(self.keep, keep)

    def close(self) -> None:
        with self.lock:
            if self.position is not None and hasattr(self.position[2], "close"):
                self.position[2].close()
            self.position = None
            self.kept.clear()

    def _read(self, data_pass):
        position = self.position
        records = list(islice(position[2], self.batch_size))
        if len(records) < self.batch_size:
            read = position[1] * self.batch_size + len(records)
            raise ValueError(
                f"The stream of {self.source.name} ended after {read} examples in pass {data_pass}; its size was "
                f"given as {len(self.source)} (num_examples, or the Hub's record of the split). Pass the right "
                "num_examples."
            )
        return records

    def records(self, step):
        """The undecoded examples of global step `step`, reading the stream forward to it if needed."""
        with self.lock:
            if step in self.kept:
                return self.kept[step]
            data_pass, position = divmod(step, self.batches_per_pass)
            if self.position is None or self.position[0] != data_pass or self.position[1] > position:
                self.position = [data_pass, 0, self.source.records(self.seed, data_pass, self.columns)]
            try:
                while self.position[1] <= position:
                    records = self._read(data_pass)  # read past undecoded when far behind the step asked for
                    if position - self.position[1] < self.keep:
                        self.kept[data_pass * self.batches_per_pass + self.position[1]] = records
                    self.position[1] += 1
            except Exception:
                self.position = None  # a failed read (network, a short stream) leaves the position unknown
                raise
            for far in [kept for kept in self.kept if abs(kept - step) >= self.keep]:  # after a rewind too
                del self.kept[far]
            return self.kept[step]
