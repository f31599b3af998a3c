"""Hub datasets read as a stream: training starts at once and nothing is downloaded ahead.

`open_source(source, spec, split, streaming=True)` (or `open_stream`) reads a split with
`datasets.load_dataset(..., streaming=True)` as a `StreamingSource`; `StreamingBatches`
(`keras_realnvp.data.streaming_batches`) feeds it to `model.fit` as `TrainingBatches` feeds
a random-access source, with the same arguments, and `evaluation_images` / `source_labels`
take it too. Only the examples read
are downloaded, one shard file at a time, and only their bytes are kept (in the shuffle
buffer) until a batch decodes them.

The batch of every global step is still a pure function of (seed, step): pass `p` over
the data reads the split through `IterableDataset.shuffle(seed=seed,
buffer_size=buffer_size)` with `set_epoch(p)`, a stream that depends only on the seed,
`p`, the buffer size and the dataset's files. What differs from the random-access mode:

- Order. Each pass shuffles the order of the dataset's shard files (when there are
  several) and draws examples at random from a buffer of `buffer_size` examples that
  the stream refills; not a uniform permutation of the whole split. An example comes
  at most about `buffer_size` places earlier than in the stream (1.5 times that for a
  single shard: `datasets` refills the buffer in blocks and keeps half of it) and
  rarely many more later, so examples far apart in a shard seldom meet in a batch, and
  a shard sorted by class gives batches of few classes unless the buffer spans several
  classes. The random-access mode draws a full permutation per pass. Same seed,
  different batches: the two modes never give the same order.
- Splits without a held-out split of their own (a preset's `held_out_every`): the
  shard order is then kept fixed (only the buffer shuffles), so that row `k` is the same
  example in every pass and the held-out rows (every `held_out_every`-th) are exactly
  those of the random-access mode, never trained on.
- Random crops and flips of the example at position `k` of pass `p` come from
  `(seed, p, k)` (random-access mode: `(seed, p, example index)`).
- Pass length. Each pass uses the first `(len(source) // batch_size) * batch_size`
  examples of its stream, as the random-access mode uses that many of its permutation;
  so the split's size must be known up front: from the Hub's record of the dataset
  (`info.splits`), from `num_examples`, or counted (local folders only).
- Resume. A run resuming at step `s` opens the stream of `s`'s pass and reads and
  discards the `(s mod batches_per_pass) * batch_size` examples before it, without
  decoding them: exact, at the cost of reading (for the Hub: downloading) that part of
  the pass again: skipping is far faster than decoding (docs/training.md has the figures
  of `keras_realnvp.benchmarks.data_loading`); from the Hub the skipped examples' bytes are downloaded, so
  resuming late in a pass of LSUN bedroom (3 million images) means downloading most of
  the pass again. Shuffling cannot be skipped past (`IterableDataset.skip` after a
  shuffle would also freeze the shard order of later passes). The checkpointable
  `IterableDataset.state_dict` is not used: it loses the shuffle buffer's contents, so
  it does not resume exactly.
- Held-out images: the first N examples of the evaluation split in stored order (or of
  the held-out rows), read once.
- Labels for a conditional model come with each example, from its own columns
  (`StreamLabels`).
- Parallel loading uses threads only: the stream is read in step order under a lock,
  and the decoding and preprocessing of different batches run in parallel.
"""

import functools
import inspect
import threading
from itertools import islice
from pathlib import Path

import numpy as np

from keras_realnvp.data.embedded import EMBEDDED
from keras_realnvp.data.hf_images import read_image, require_datasets
from keras_realnvp.data.image_folders import open_image_folder
from keras_realnvp.data.label_columns import label_reader
from keras_realnvp.data.preprocessing import preprocess
from keras_realnvp.data.splits import hub_split
from keras_realnvp.models.input_checks import check_count

# 10,000 examples: 64x64 PNGs or CelebA's JPEGs (about 10 kB) take about 100 MB, LSUN's
# 50-100 kB images up to 1 GB. The buffer holds the images' bytes, never decoded pixels.
DEFAULT_BUFFER_SIZE = 10_000


def _in_split(example, index, every, held_out):
    return (index % every == every - 1) == held_out


def _one_shard_options(stream) -> dict:
    """`shuffle` options that skip `datasets`' shard interleaving when there is one shard.

    Interleaving fills the buffer from up to 10 shards at once (better mixing of shards
    that are sorted, by class for instance), in threads; for Parquet `datasets` then sleeps
    5 s whenever such an iterator closes (an Arrow shutdown hang's workaround), which is once
    per pass, and for a single shard it buys nothing.
    """
    shards = getattr(stream, "num_shards", None) or getattr(stream, "n_shards", 1)
    if shards <= 1 and "max_buffer_input_shards" in inspect.signature(stream.shuffle).parameters:
        return {"max_buffer_input_shards": 1}
    return {}


class StreamingSource:
    """One split of a dataset read as a `datasets.IterableDataset`, in stored order or shuffled per pass.

    Made by `open_stream` (or `open_source(..., streaming=True)`). `len(source)` is the
    number of examples of the split (after setting the held-out rows aside); `records()`
    iterates over its examples as dicts of columns, the image column undecoded
    (`{"bytes": ..., "path": ...}`), and `image()` decodes one.

    Args:
        stream: the split as an unshuffled `datasets.IterableDataset`.
        image_column: the column holding the images.
        name: how errors name the data.
        split: "train" or "eval".
        num_examples: examples in `stream` (before `held_out_every` sets rows aside), or
            `None` when unknown (then `len()` raises a `ValueError`).
        held_out_every: every this many rows of `stream` (the last of each group) are the
            held-out ones: "train" leaves them out, "eval" keeps only them.
        buffer_size: examples in the shuffle buffer of `records(seed, ...)`.

    Example:

    >>> import datasets, io
    >>> from PIL import Image
    >>> def png(value):
    ...     buffer = io.BytesIO()
    ...     Image.new("RGB", (4, 4), color=(value,) * 3).save(buffer, format="PNG")
    ...     return {"bytes": buffer.getvalue(), "path": None}
    >>> table = datasets.Dataset.from_dict({"image": [png(v) for v in range(10)]})
    >>> stream = table.cast_column("image", datasets.Image()).to_iterable_dataset()
    >>> source = StreamingSource(stream, "image", "ten images", "train", 10, held_out_every=5, buffer_size=4)
    >>> len(source), [int(np.asarray(source.image(r, "?"))[0, 0, 0]) for r in source.records()]
    (8, [0, 1, 2, 3, 5, 6, 7, 8])
    >>> shuffled = [int(np.asarray(source.image(r, "?"))[0, 0, 0]) for r in source.records(seed=0, data_pass=1)]
    >>> sorted(shuffled), shuffled == [int(np.asarray(source.image(r, "?"))[0, 0, 0])
    ...                                 for r in source.records(seed=0, data_pass=1)]
    ([0, 1, 2, 3, 5, 6, 7, 8], True)
    """

    def __init__(self, stream, image_column: str, name: str, split: str, num_examples, held_out_every=None,
                 buffer_size: int = DEFAULT_BUFFER_SIZE):
        datasets = require_datasets()
        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}.")
        check_count(buffer_size, "buffer_size")
        if num_examples is not None:
            check_count(num_examples, "num_examples")
        if held_out_every is not None:
            check_count(held_out_every, "held_out_every")
        self.features = stream.features
        if self.features is not None:
            if image_column not in self.features:
                raise ValueError(
                    f"{name} has no image column {image_column!r}; its columns are {', '.join(self.features)}."
                )
            # Undecoded: the shuffle buffer holds bytes, and skipping examples costs no decoding.
            stream = stream.cast_column(image_column, datasets.Image(decode=False))
        if held_out_every:
            # skip(0) fixes the shard order for every pass: with shuffled shards the running
            # index below would number the rows differently in each pass, and the held-out rows
            # would change (and be trained on).
            stream = stream.skip(0).filter(
                functools.partial(_in_split, every=held_out_every, held_out=split == "eval"), with_indices=True
            )
            if num_examples is not None:
                held_out = num_examples // held_out_every
                num_examples = held_out if split == "eval" else num_examples - held_out
        self.stream = stream
        self.image_column = image_column
        self.name = name
        self.split = split
        self.num_examples = num_examples
        self.held_out_every = held_out_every
        self.buffer_size = int(buffer_size)
        self._readers = {}
        self._readers_lock = threading.Lock()

    def __len__(self):
        if self.num_examples is None:
            raise ValueError(
                f"The number of examples of {self.name} is unknown: the Hub does not record it; pass num_examples "
                "(the split's size) to open_source."
            )
        return self.num_examples

    def records(self, seed=None, data_pass: int = 0, columns=None):
        """An iterator over the examples: in stored order, or with `seed` the shuffled stream of pass `data_pass`.

        `columns` restricts each example to those columns (the image column is always read).
        """
        stream = self.stream
        if columns is not None:
            stream = stream.select_columns(list(dict.fromkeys([self.image_column, *columns])))
        if seed is not None:
            stream = stream.shuffle(seed=int(seed), buffer_size=self.buffer_size, **_one_shard_options(stream))
            stream.set_epoch(int(data_pass))
        return iter(stream)

    def shared_reader(self, key, make):
        """The reader of this source stored under `key`, made by `make()` the first time; `close()` closes it.

        `StreamingBatches` keeps its open stream here (one per seed, columns and batch size), so
        that the next chunk of a run continues the same open stream instead of reopening its
        pass and skipping to where the last chunk stopped.
        """
        with self._readers_lock:
            reader = self._readers.get(key)
            if reader is None:
                reader = self._readers[key] = make()
            return reader

    def image(self, record, where: str):
        """The PIL image of one example (`where` names it in errors when the record has no path)."""
        return read_image(record[self.image_column], where, self.name)

    def close(self) -> None:
        """Close the streams that `StreamingBatches` left open (files, `datasets`' reader threads).

        Call it when training is over; a later read reopens them (at the cost of skipping to
        the step). Closing a stream over several Parquet shards can take 5 s (`datasets`
        waits for Arrow's threads); dropping it unclosed costs the same later, wherever the
        garbage collector happens to run.
        """
        with self._readers_lock:
            readers, self._readers = list(self._readers.values()), {}
        for reader in readers:
            reader.close()


def _split_size(stream, split_name: str, local: bool, image_column: str):
    """The examples in `split_name`, as the Hub records it; counted for a local folder (file paths only)."""
    splits = getattr(stream.info, "splits", None) or {}
    recorded = splits.get(split_name)
    if recorded is not None and recorded.num_examples:
        return int(recorded.num_examples)
    if local:
        if stream.features is not None and image_column in stream.features:  # paths only: nothing is opened
            stream = stream.select_columns([image_column]).cast_column(
                image_column, require_datasets().Image(decode=False))
        return sum(1 for _ in stream)
    return None


def open_stream(source: str, dataset_spec: dict, split: str, num_examples=None,
                buffer_size: int = DEFAULT_BUFFER_SIZE) -> StreamingSource:
    """`split` ("train" or "eval") of a Hub dataset or local image folder as a `StreamingSource`.

    The splits are those of `open_source` (the spec's `train_split` / `eval_split`, or
    every `held_out_every`-th row held out; a folder's split sub-folders). `num_examples`
    is the size of the Hub split that is read (before held-out rows are set aside), for
    datasets whose Hub record lacks it; a training split must have a known size (see the
    module), an evaluation split need not.

    Example:

    >>> import tempfile
    >>> from PIL import Image
    >>> folder = Path(tempfile.mkdtemp())
    >>> for i in range(6):
    ...     Image.new("RGB", (4, 4), color=(i, 0, 0)).save(folder / f"{i}.png")
    >>> train = open_stream(str(folder), {"held_out_every": 3}, "train", buffer_size=2)
    >>> held_out = open_stream(str(folder), {"held_out_every": 3}, "eval")
    >>> len(train), [int(np.asarray(held_out.image(r, "?"))[0, 0, 0]) for r in held_out.records()]
    (4, [2, 5])
    """
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}.")
    if source == EMBEDDED:
        raise ValueError(
            "The embedded patches are in memory; streaming applies to Hub datasets and image folders."
        )
    if num_examples is not None:
        check_count(num_examples, "num_examples")
    check_count(buffer_size, "buffer_size")
    if Path(source).exists():
        stream, split_name, every = open_image_folder(source, dataset_spec, split, streaming=True)
        image_column, name, local = "image", f"image folder {source}", True
    else:
        datasets = require_datasets()
        split_name, every = hub_split(source, dataset_spec, split)
        try:
            stream = datasets.load_dataset(source, split=split_name, streaming=True)
        except Exception as error:  # offline, unknown id, no access...
            raise ValueError(f"Cannot stream the Hub dataset {source!r} (split {split_name!r}): {error}") from None
        image_column, name, local = dataset_spec.get("image_column", "image"), f"Hub dataset {source}", False
    if num_examples is None:
        num_examples = _split_size(stream, split_name, local, image_column)
    if num_examples is None and split == "train":
        raise ValueError(
            f"The Hub does not record the size of split {split_name!r} of {source}, and streaming needs it to "
            "know where each pass ends (for an exact resume); pass num_examples (the split's number of examples)."
        )
    return StreamingSource(stream, image_column, f"{name} (streamed)", split, num_examples, every, buffer_size)


class StreamLabels:
    """The label vectors of streamed examples, read from their own columns (`source_labels` makes one).

    Calling it on a list of examples (dicts of columns) gives their `(n, K)` float32 labels.

    Example:

    >>> import datasets
    >>> features = datasets.Features({"label": datasets.ClassLabel(names=["cat", "dog"])})
    >>> labels = StreamLabels(*label_reader("pets", features, {}, 2, None))
    >>> labels.columns, labels.names, labels([{"label": 1}]).tolist()
    (['label'], ['cat', 'dog'], [[0.0, 1.0]])
    """

    def __init__(self, columns, convert, names):
        self.columns = list(columns)
        self.convert = convert
        self.names = list(names)

    def __call__(self, records) -> np.ndarray:
        values = {column: [record[column] for record in records] for column in self.columns}
        return np.asarray(self.convert(values), dtype=np.float32).reshape(len(records), len(self.names))


def stream_labels(source: StreamingSource, dataset_spec: dict, label_dim: int):
    """`(StreamLabels, names)` for a streaming source: what `source_labels` gives for one.

    Example:

    >>> import datasets
    >>> table = datasets.Dataset.from_dict({"image": [None], "label": [1]}).cast_column(
    ...     "label", datasets.ClassLabel(names=["cat", "dog"]))
    >>> source = StreamingSource(table.to_iterable_dataset(), "image", "pets", "eval", 1)
    >>> labels, names = stream_labels(source, {}, 2)
    >>> names, labels(list(source.records())).tolist()
    (['cat', 'dog'], [[0.0, 1.0]])
    """
    first = lambda column: next(source.records(columns=[column]), {}).get(column)  # noqa: E731
    columns, convert, names = label_reader(source.name, source.features, dataset_spec, label_dim, first)
    labels = StreamLabels(columns, convert, names)
    return labels, labels.names


def streaming_evaluation_images(source: StreamingSource, image_shape, preprocessing="none", limit=None,
                                labels=None):
    """`evaluation_images` for a streaming source: the first `limit` examples in stored order.

    Example:

    >>> import datasets, io
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    >>> table = datasets.Dataset.from_dict({"image": [{"bytes": buffer.getvalue(), "path": None}] * 5})
    >>> source = StreamingSource(table.cast_column("image", datasets.Image()).to_iterable_dataset(), "image",
    ...                          "five", "eval", None)
    >>> streaming_evaluation_images(source, (4, 4, 3), limit=3).shape
    (3, 4, 4, 3)
    """
    if labels is not None and not isinstance(labels, StreamLabels):
        raise ValueError(
            f"The labels of the streaming source {source.name} come from source_labels (a StreamLabels), got "
            f"{type(labels).__name__}."
        )
    if limit is not None:
        check_count(limit, "limit")
    records = list(islice(source.records(columns=None if labels is None else labels.columns), limit))
    if not records:
        raise ValueError(f"{source.name} has no images for evaluation.")
    images = np.stack([
        preprocess(source.image(record, f"example {i}"), preprocessing, image_shape, None, flips=False)
        for i, record in enumerate(records)
    ])
    return images if labels is None else (images, labels(records))

