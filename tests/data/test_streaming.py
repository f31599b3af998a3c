"""Streaming a Hub dataset: seeded buffer-shuffled passes, exact resume, held-out images, labels.

There is no Hub here: `datasets.load_dataset` is patched so that the test id reads local
Parquet shards laid out as a Hub repository (`data/{split}-0000k-of-0000n.parquet`, an
Image column and label columns), through the same `datasets` code paths (`streaming=True`
too). Each image's number is stored in its first pixel (red + 256 * green), so every test
can tell which examples a batch holds. Most splits are one shard: `datasets` sleeps 5 s
whenever an iterator over several interleaved Parquet shards closes.
"""

import importlib.util
import io
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import datasets
import keras
import numpy as np
import pytest
from PIL import Image

from keras_realnvp.data.sources import ArraySource, open_source, source_labels
from keras_realnvp.data.streaming import StreamingSource, StreamLabels
from keras_realnvp.data.streaming_batches import StreamingBatches
from keras_realnvp.data.training_batches import TrainingBatches, evaluation_images

ROOT = Path(__file__).resolve().parents[2]
HUB_ID = "keras-realnvp-tests/streamed"
CLASSES = ["a", "b", "c"]
ATTRIBUTES = ["Smiling", "Young"]


def _png(number: int) -> dict:
    pixels = np.zeros((8, 8, 3), np.uint8)
    pixels[..., 0], pixels[..., 1] = number % 256, number // 256
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def _numbers(images) -> list[int]:
    return [int(image[0, 0, 0]) + 256 * int(image[0, 0, 1]) for image in images]


def _attributes(number: int) -> list[bool]:
    return [number % 2 == 1, number % 3 == 0]


def _write_split(folder: Path, split: str, numbers, shards: int) -> None:
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES),
                                  **{name: datasets.Value("bool") for name in ATTRIBUTES}})
    numbers, size = list(numbers), len(numbers) // shards
    for k in range(shards):  # contiguous shards, as the Hub stores a split
        part = numbers[k * size : (k + 1) * size]
        table = datasets.Dataset.from_dict({
            "image": [_png(n) for n in part], "label": [n % 3 for n in part],
            **{name: [_attributes(n)[i] for n in part] for i, name in enumerate(ATTRIBUTES)},
        }, features=features)
        table.to_parquet(str(folder / "data" / f"{split}-{k:05d}-of-{shards:05d}.parquet"))


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory):
    """A Hub-like repository: train (40 examples, numbers 0..39, one shard; the same in two
    shards as "train2") and validation (12 examples, numbers 200..211)."""
    folder = tmp_path_factory.mktemp("hub")
    (folder / "data").mkdir()
    _write_split(folder, "train", range(40), 1)
    _write_split(folder, "train2", range(40), 2)
    _write_split(folder, "validation", range(200, 212), 1)
    return folder


@pytest.fixture
def hub(hub_folder, monkeypatch):
    """`datasets.load_dataset(HUB_ID, split=...)` reads the local shards; `calls` records (split, streaming)."""
    real = datasets.load_dataset
    state = SimpleNamespace(calls=[], record_sizes=False)

    def load_dataset(path, *args, split=None, streaming=False, **kwargs):
        if path != HUB_ID:
            return real(path, *args, split=split, streaming=streaming, **kwargs)
        state.calls.append((split, streaming))
        files = sorted(str(p) for p in (hub_folder / "data").glob(f"{split}-*.parquet"))
        if not files:
            raise ValueError(f'Unknown split "{split}".')
        dataset = real("parquet", data_files={split: files}, split=split, streaming=streaming)
        if state.record_sizes:  # as the Hub's dataset card records them
            count = sum(datasets.Dataset.from_parquet(f).num_rows for f in files)
            dataset.info.splits = datasets.SplitDict({split: datasets.SplitInfo(split, num_examples=count)})
        return dataset

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return state


SPEC = {"hub_id": HUB_ID, "image_column": "image", "train_split": "train", "eval_split": "validation"}


def _stream(split="train", spec=SPEC, num_examples="default", buffer_size=8):
    """The test dataset's split, streamed; the training split's size is given (the Hub record lacks it)."""
    if num_examples == "default":
        num_examples = 40 if split == "train" else None
    return open_source(HUB_ID, spec, split, streaming=True, num_examples=num_examples, buffer_size=buffer_size)


def _as_fit_reads(batches) -> list:
    """The batches in the order `model.fit` receives them: through Keras' PyDataset adapter and its
    enqueuer (the worker threads or processes when `batches.workers > 1`)."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(batches, shuffle=False)
    adapter.on_epoch_begin()
    got = list(adapter.get_numpy_iterator())
    adapter.on_epoch_end()
    return got


def test_each_pass_reads_every_example_once_in_a_seeded_buffer_order(hub):
    source = _stream()
    batches = StreamingBatches(source, (8, 8, 3), 8, seed=1, start_step=0, num_steps=15)
    assert batches.batches_per_pass == 5
    passes = [sum((_numbers(batches[5 * p + i][0]) for i in range(5)), []) for p in range(3)]
    for one_pass in passes:
        assert sorted(one_pass) == list(range(40))  # 40 = 5 batches of 8: nothing left over
    assert len({tuple(p) for p in passes}) == 3  # reshuffled every pass
    # A buffer of 8 examples, not a full permutation: no example comes much earlier than in the
    # stored order (`datasets` refills the buffer in blocks of 8 and keeps half: 1.5 x 8 at most).
    assert all(number - position <= 12 for position, number in enumerate(passes[0]))
    again = StreamingBatches(_stream(), (8, 8, 3), 8, seed=1, start_step=0, num_steps=15)
    assert [_numbers(again[i][0]) for i in range(15)] == [_numbers(batches[i][0]) for i in range(15)]
    other_seed = StreamingBatches(_stream(), (8, 8, 3), 8, seed=2, start_step=0, num_steps=5)
    assert [_numbers(other_seed[i][0]) for i in range(5)] != [_numbers(batches[i][0]) for i in range(5)]
    assert hub.calls and all(streaming for _, streaming in hub.calls)  # never a full download


@pytest.mark.parametrize("start_step", [3, 5, 7, 11])
def test_a_resumed_run_gets_exactly_the_uninterrupted_batches(hub, start_step):
    uninterrupted = StreamingBatches(_stream(), (8, 8, 3), 8, 3, 0, 12, flips=True)
    expected = [uninterrupted[i][0] for i in range(12)]
    # A fresh process: a new source, opened at the step it resumes from.
    resumed = StreamingBatches(_stream(), (8, 8, 3), 8, 3, start_step, 12 - start_step, flips=True)
    for i in range(12 - start_step):
        np.testing.assert_array_equal(resumed[i][0], expected[start_step + i])
    # Out of order (behind the stream and ahead of it) on one object: the same batches.
    for index in (9, 2, 10, 0, 4):
        np.testing.assert_array_equal(uninterrupted[index][0], expected[index])


def test_consecutive_chunks_continue_one_stream_and_match_one_run(hub):
    source = _stream()
    whole = [StreamingBatches(_stream(), (8, 8, 3), 8, 0, 0, 9)[i][0] for i in range(9)]
    chunks = [StreamingBatches(source, (8, 8, 3), 8, 0, start, count) for start, count in ((0, 4), (4, 3), (7, 2))]
    got = [chunk[i][0] for chunk in chunks for i in range(len(chunk))]
    for a, b in zip(got, whole, strict=True):
        np.testing.assert_array_equal(a, b)
    reader = source._readers[(0, None, 8)]
    assert reader.position[:2] == [1, 4]  # pass 1, batch 4 next: read straight through, never reopened


@pytest.mark.parametrize("workers", [2, 4])
def test_thread_workers_give_the_same_batches_in_the_same_order(hub, workers):
    expected = _as_fit_reads(StreamingBatches(_stream(), (8, 8, 3), 8, 5, 2, 10, flips=True))
    parallel = StreamingBatches(_stream(), (8, 8, 3), 8, 5, 2, 10, flips=True, workers=workers, max_queue_size=3)
    got = _as_fit_reads(parallel)
    assert len(got) == len(expected) == 10
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a[0], b[0])


def test_held_out_rows_are_the_random_access_ones_and_never_trained_on(hub):
    # No held-out split: every 5th row of the (two-shard) training split is held out.
    spec = {"image_column": "image", "train_split": "train2", "eval_split": None, "held_out_every": 5}
    stream_eval = open_source(HUB_ID, spec, "eval", streaming=True, num_examples=40)
    random_access_eval = open_source(HUB_ID, spec, "eval")
    held_out = _numbers(evaluation_images(random_access_eval, (8, 8, 3)))
    assert held_out == [4, 9, 14, 19, 24, 29, 34, 39]
    assert _numbers(evaluation_images(stream_eval, (8, 8, 3))) == held_out
    assert _numbers(evaluation_images(stream_eval, (8, 8, 3), limit=3)) == held_out[:3]
    train = open_source(HUB_ID, spec, "train", streaming=True, num_examples=40, buffer_size=6)
    assert len(train) == 32
    batches = StreamingBatches(train, (8, 8, 3), 8, seed=0, start_step=0, num_steps=12)
    for data_pass in range(3):
        seen = sum((_numbers(batches[4 * data_pass + i][0]) for i in range(4)), [])
        assert sorted(seen) == sorted(set(range(40)) - set(held_out)), data_pass


def test_evaluation_is_the_first_examples_of_the_eval_split_in_stored_order(hub):
    held_out = _stream("eval")
    assert _numbers(evaluation_images(held_out, (8, 8, 3), limit=5)) == [200, 201, 202, 203, 204]
    assert _numbers(evaluation_images(held_out, (8, 8, 3))) == list(range(200, 212))
    with pytest.raises(ValueError, match="The number of examples of .* is unknown"):
        len(held_out)  # an evaluation split's size is not needed, and the Hub record lacks it here


@pytest.mark.parametrize("kind", ["classes", "attribute columns"])
def test_labels_stream_with_their_images(hub, kind):
    spec = {**SPEC, "label_columns": ATTRIBUTES} if kind == "attribute columns" else SPEC
    dim = 2 if kind == "attribute columns" else 3
    expected = {n: np.asarray(_attributes(n), np.float32) if dim == 2 else np.eye(3, dtype=np.float32)[n % 3]
                for n in [*range(40), *range(200, 212)]}
    train = _stream(spec=spec)
    labels, names = source_labels(train, spec, dim)
    assert isinstance(labels, StreamLabels) and names == (ATTRIBUTES if dim == 2 else CLASSES)
    batches = StreamingBatches(train, (8, 8, 3), 8, seed=4, start_step=3, num_steps=4, labels=labels, workers=2)
    for (inputs,) in _as_fit_reads(batches):
        np.testing.assert_array_equal(inputs["labels"], [expected[n] for n in _numbers(inputs["images"])])
    held_out = _stream("eval", spec=spec)
    pixels, eval_labels = evaluation_images(held_out, (8, 8, 3), limit=4, labels=source_labels(held_out, spec, dim)[0])
    np.testing.assert_array_equal(eval_labels, [expected[n] for n in _numbers(pixels)])
    with pytest.raises(ValueError, match="has 3 classes .*label_dim=4|2 attribute columns .*label_dim=4"):
        source_labels(train, spec, 4)


def test_the_split_size_comes_from_the_hub_record_or_num_examples(hub):
    with pytest.raises(ValueError, match="does not record the size of split 'train'.*pass num_examples"):
        open_source(HUB_ID, SPEC, "train", streaming=True)
    hub.record_sizes = True
    assert len(open_source(HUB_ID, SPEC, "train", streaming=True)) == 40
    assert len(open_source(HUB_ID, SPEC, "eval", streaming=True)) == 12
    too_many = StreamingBatches(_stream(num_examples=48), (8, 8, 3), 8, 0, 0, 6)
    [too_many[i] for i in range(5)]  # 40 examples: five full batches
    with pytest.raises(ValueError, match=r"ended after 40 examples in pass 0; its size was given as 48"):
        too_many[5]
    fewer = StreamingBatches(_stream(num_examples=20), (8, 8, 3), 8, 0, 0, 4)  # passes of 2 batches
    assert fewer.batches_per_pass == 2 and all(fewer[i][0].shape == (8, 8, 8, 3) for i in range(4))


def test_what_streaming_cannot_do_is_refused_early(hub):
    with pytest.raises(ValueError, match="embedded patches are in memory"):
        open_source("embedded", {}, "train", streaming=True)
    with pytest.raises(ValueError, match="apply to streaming=True only"):
        open_source("embedded", {}, "train", buffer_size=10)
    with pytest.raises(ValueError, match="buffer_size must be a positive integer, got 0"):
        _stream(buffer_size=0)
    with pytest.raises(ValueError, match="num_examples must be a positive integer, got -3"):
        _stream(num_examples=-3)
    with pytest.raises(ValueError, match=r"Cannot stream the Hub dataset .* \(split 'test'\)"):
        open_source(HUB_ID, {**SPEC, "train_split": "test"}, "train", streaming=True, num_examples=4)
    with pytest.raises(ValueError, match="has no image column 'picture'; its columns are image, label"):
        _stream(spec={**SPEC, "image_column": "picture"})
    source = _stream()
    with pytest.raises(ValueError, match="threads only"):
        StreamingBatches(source, (8, 8, 3), 8, 0, 0, 1, workers=2, use_multiprocessing=True)
    with pytest.raises(ValueError, match="reads a StreamingSource .* got ArraySource; use TrainingBatches"):
        StreamingBatches(ArraySource(np.zeros((8, 8, 8, 3), np.uint8), "zeros"), (8, 8, 3), 8, 0, 0, 1)
    with pytest.raises(ValueError, match="trains on a 'train' split"):
        StreamingBatches(_stream("eval"), (8, 8, 3), 4, 0, 0, 1)
    with pytest.raises(ValueError, match="come from source_labels"):
        StreamingBatches(source, (8, 8, 3), 8, 0, 0, 1, labels=np.eye(40, dtype="float32"))
    with pytest.raises(ValueError, match="fewer than the batch size 64"):
        StreamingBatches(source, (8, 8, 3), 64, 0, 0, 1)
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        TrainingBatches(ArraySource(np.zeros((8, 8, 8, 3), np.uint8), "zeros"), (8, 8, 3), 8, 0, 0, 1, workers=0)


def test_a_broken_streamed_image_is_reported_with_its_place(tmp_path, monkeypatch):
    rows = [_png(n) for n in range(8)]
    rows[5] = {"bytes": b"not a picture", "path": None}
    table = datasets.Dataset.from_dict({"image": rows}).cast_column("image", datasets.Image())
    source = StreamingSource(table.to_iterable_dataset(), "image", "a stream", "train", 8, buffer_size=2)
    batches = StreamingBatches(source, (8, 8, 3), 8, seed=0, start_step=0, num_steps=1)
    with pytest.raises(ValueError, match=r"Cannot read image example \d of pass 0 of a stream"):
        batches[0]


def test_model_fit_trains_on_streamed_batches_with_thread_workers(hub):
    from keras_realnvp import RealNVP

    model = RealNVP(image_shape=(8, 8, 3), num_scales=1, filters=4, num_blocks=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    batches = StreamingBatches(_stream(), (8, 8, 3), 8, seed=0, start_step=3, num_steps=4, flips=True, workers=2)
    history = model.fit(batches, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["bits_per_dim"][-1])


def test_the_data_loading_benchmark_reports_its_figures(tmp_path):
    """keras_realnvp/benchmarks/data_loading.py, tiny and without the training measurement (no timing asserted)."""
    path = ROOT / "keras_realnvp" / "benchmarks" / "data_loading.py"
    spec = importlib.util.spec_from_file_location("data_loading", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--output", str(tmp_path), "--images", "24", "--batch-size", "8", "--steps", "2",
                          "--rounds", "1", "--workers", "1", "2", "--shards", "1", "--measure", "loading",
                          "streaming", "--buffer-size", "8"])
    assert set(result["loading"]) == {"1", "2"} and result["cpu"]
    assert [entry["workers"] for entry in result["streaming"]] == [1, 2]
    assert all(entry["examples"] == 24 and entry["images_per_s"] > 0 for entry in result["streaming"])
    assert json.loads((tmp_path / "results.json").read_text()) == result


def test_importing_the_package_and_the_data_layer_does_not_import_datasets():
    """`datasets` is imported by the functions that read data: it is an optional dependency."""
    import subprocess

    modules = ("sources", "training_batches", "streaming", "streaming_batches", "image_folders", "hf_images")
    code = (f"import sys, keras_realnvp, {', '.join(f'keras_realnvp.data.{name}' for name in modules)}; "
            "print('datasets' in sys.modules)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip().splitlines()[-1] == "False"


def test_a_missing_datasets_names_the_extra_that_installs_it(tmp_path, monkeypatch):
    Image.new("RGB", (4, 4)).save(tmp_path / "0.png")
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` raises ImportError
    for streaming in (False, True):
        with pytest.raises(ImportError, match=r"pip install keras-realnvp\[train\]"):
            open_source(str(tmp_path), {}, "train", streaming=streaming)
    assert len(open_source("embedded", {"patch_size": 16}, "eval")) == 416  # needs no `datasets`
