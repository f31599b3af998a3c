"""Data loading speed: training steps/s with the data path included, and streaming images/s.

Writes CelebA-style data (aligned 218x178 JPEGs, quality 95, cut at random places from
scikit-learn's two bundled photos, so they compress and decode like photographs) into
`--output`, as a local image folder and as Hub-style Parquet shards (`data/train-*.parquet`,
the layout `datasets` streams from the Hub), then measures on the current Keras backend:

- `loading`: batches/s of `TrainingBatches` (CelebA preprocessing, flips) read the way
  `model.fit` reads them (Keras' `PyDatasetAdapter`), for each worker setting, no model;
- `training`: steps/s of `model.fit` on a small RealNVP (64x64x3, by default 1 scale, 4
  filters, one residual block) on those batches, compiled once, for each worker setting,
  and on the same batches preprocessed beforehand ("preloaded": no loading cost at all);
- `streaming`: images/s of `StreamingBatches` over the Parquet shards (shuffle buffer,
  decoding, preprocessing), and examples/s of reading the shuffled stream without
  decoding, which is what skipping costs when a streamed run resumes.

Usage (nothing is asserted; the figures depend on the machine and on what else runs):

    KERAS_BACKEND=torch python -m keras_realnvp.benchmarks.data_loading --output /tmp/data-bench \\
        --workers 1 2 4 --processes 2 --steps 8 --rounds 3

(`python tools/benchmarks/data_loading.py ...` in a checkout is the same.) Prints one JSON
object (also written to `--output/results.json`) with the CPU's name.

Example:

>>> cpu_name().endswith("cores")
True
"""

import argparse
import functools
import gc
import json
import os
import platform
import statistics
import time
from itertools import islice
from pathlib import Path

import numpy as np

CELEBA = (218, 178)


def cpu_name() -> str:
    """The CPU's model name (as `lscpu` shows it), with the cores this process may use.

    Example:

    >>> "cores" in cpu_name()
    True
    """
    name = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name}, {cores} cores"


def write_celeba_like(folder, count: int, seed: int = 0) -> Path:
    """`count` 218x178 JPEGs in `folder`, cut from scikit-learn's sample photos (kept if already there).

    Example:

    >>> import tempfile
    >>> folder = write_celeba_like(tempfile.mkdtemp(), 2)
    >>> sorted(p.name for p in folder.iterdir())
    ['000000.jpg', '000001.jpg']
    """
    from PIL import Image
    from sklearn.datasets import load_sample_images

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.jpg"))) == count:
        return folder
    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    for i in range(count):
        photo = photos[i % len(photos)]
        top, left = rng.integers(0, photo.shape[0] - CELEBA[0]), rng.integers(0, photo.shape[1] - CELEBA[1])
        crop = photo[top : top + CELEBA[0], left : left + CELEBA[1]]
        Image.fromarray(crop[:, ::-1] if rng.random() < 0.5 else crop).save(folder / f"{i:06d}.jpg", quality=95)
    return folder


def write_parquet_shards(images_folder, output, shards: int = 4) -> list[str]:
    """The JPEGs of `images_folder` as Hub-style Parquet shards with an Image column; returns their paths.

    Example:

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> [Path(p).name for p in write_parquet_shards(write_celeba_like(root / "images", 2), root, shards=1)]
    ['train-00000-of-00001.parquet']
    """
    import datasets

    output = Path(output)
    files = sorted(Path(images_folder).glob("*.jpg"))
    paths = [output / "data" / f"train-{k:05d}-of-{shards:05d}.parquet" for k in range(shards)]
    if all(p.exists() for p in paths):
        return [str(p) for p in paths]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for k, path in enumerate(paths):
        rows = [{"bytes": f.read_bytes(), "path": None} for f in files[k::shards]]
        table = datasets.Dataset.from_dict({"image": rows}).cast_column("image", datasets.Image())
        table.to_parquet(str(path))
    return [str(p) for p in paths]


def _iterate_as_fit_does(batches, steps: int) -> float:
    """Seconds to read `steps` batches through Keras' PyDataset adapter (its enqueuer with workers)."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(batches, shuffle=False)
    adapter.on_epoch_begin()
    start = time.perf_counter()
    for count, _ in enumerate(adapter.get_numpy_iterator(), 1):
        if count == steps:
            break
    seconds = time.perf_counter() - start
    adapter.on_epoch_end()
    return seconds


def _settings(spec: str) -> tuple[int, bool]:
    """"4" -> 4 threads, "p2" -> 2 processes."""
    return (int(spec[1:]), True) if spec.startswith("p") and spec != "preloaded" else (int(spec), False)


def loading_rate(source, setting: str, steps: int, batch_size: int, seed: int = 0) -> float:
    """Batches/s of `TrainingBatches` with CelebA preprocessing, read as `model.fit` reads them.

    `setting`: "N" for N threads, "pN" for N processes.

    Example:

    >>> import tempfile
    >>> from keras_realnvp.data.sources import open_source
    >>> source = open_source(str(write_celeba_like(tempfile.mkdtemp(), 4)), {"held_out_every": 10**9}, "train")
    >>> loading_rate(source, "1", steps=1, batch_size=2) > 0
    True
    """
    from keras_realnvp.data.training_batches import TrainingBatches

    workers, processes = _settings(setting)
    batches = TrainingBatches(source, (64, 64, 3), batch_size, seed, 0, steps, "celeba", True, workers=workers,
                              use_multiprocessing=processes)
    return steps / _iterate_as_fit_does(batches, steps)


class Trainer:
    """A small RealNVP (64x64x3) compiled once, fitted on `TrainingBatches` of a source chunk by chunk.

    Example:

    >>> import tempfile
    >>> from keras_realnvp.data.sources import open_source
    >>> source = open_source(str(write_celeba_like(tempfile.mkdtemp(), 4)), {"held_out_every": 10**9}, "train")
    >>> trainer = Trainer(source, batch_size=2, num_scales=1, filters=2, warmup=1)
    >>> trainer.fit("preloaded", steps=1) > 0
    True
    """

    def __init__(self, source, batch_size: int, num_scales: int, filters: int, warmup: int = 2):
        import keras

        from keras_realnvp import RealNVP

        keras.utils.set_random_seed(0)
        self.source, self.batch_size, self.step = source, batch_size, 0
        self.model = RealNVP(image_shape=(64, 64, 3), num_scales=num_scales, filters=filters, num_blocks=1)
        self.model.compile(optimizer=keras.optimizers.Adam(1e-3))
        self.fit("1", warmup)  # compilation and the first steps' allocations

    def fit(self, setting: str, steps: int) -> float:
        """Steps/s of `model.fit` over the next `steps` batches, loaded with `setting`'s workers.

        `setting` "preloaded": the same batches, preprocessed beforehand and held in memory:
        the steps/s without any data loading cost, the most that parallel loading can reach.
        """
        from keras_realnvp.data.sources import ArraySource
        from keras_realnvp.data.training_batches import TrainingBatches

        if setting == "preloaded":
            loaded = TrainingBatches(self.source, (64, 64, 3), self.batch_size, 0, self.step, steps, "celeba", True)
            images = ArraySource(np.concatenate([loaded[i][0] for i in range(steps)]), "preloaded")
            # In order: with one pass of exactly these images, step k is batch k of a seeded permutation.
            batches = TrainingBatches(images, (64, 64, 3), self.batch_size, 0, 0, steps)
        else:
            workers, processes = _settings(setting)
            batches = TrainingBatches(self.source, (64, 64, 3), self.batch_size, 0, self.step, steps, "celeba", True,
                                      workers=workers, use_multiprocessing=processes)
        began = time.perf_counter()
        self.model.fit(batches, epochs=1, shuffle=False, verbose=0)
        self.step += steps
        return steps / (time.perf_counter() - began)


def streaming_rates(parquet_files, workers: int, steps: int, batch_size: int, buffer_size: int) -> dict:
    """Images/s of `StreamingBatches` (decoded, preprocessed) and examples/s of the undecoded shuffled stream.

    Both stop `2 * buffer_size` examples before the end of the pass: when the shuffle buffer
    has read all of a stream over several Parquet shards, `datasets` sleeps 5 s (once per
    pass in training), which would swamp a short measurement.

    Example:

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> shards = write_parquet_shards(write_celeba_like(root / "images", 8), root, shards=1)
    >>> streaming_rates(shards, workers=1, steps=1, batch_size=2, buffer_size=2)["examples"]
    8
    """
    import datasets
    import pyarrow.parquet

    from keras_realnvp.data.streaming import StreamingSource
    from keras_realnvp.data.streaming_batches import StreamingBatches

    stream = datasets.load_dataset("parquet", data_files={"train": list(parquet_files)}, split="train",
                                   streaming=True)
    count = sum(pyarrow.parquet.ParquetFile(f).metadata.num_rows for f in parquet_files)  # the footers only
    source = StreamingSource(stream, "image", "local Parquet shards", "train", count, buffer_size=buffer_size)
    usable = max(batch_size, count - 2 * buffer_size)
    steps = min(steps, usable // batch_size)
    batches = StreamingBatches(source, (64, 64, 3), batch_size, 0, 0, steps, "celeba", True, workers=workers)
    gc.collect()  # an earlier measurement's streams, closed now rather than during this one
    images_per_s = steps * batch_size / _iterate_as_fit_does(batches, steps)
    source.close()
    records = source.records(seed=1, data_pass=0)
    start = time.perf_counter()
    read = sum(1 for _ in islice(records, usable))  # what a resumed run reads past
    seconds = time.perf_counter() - start
    records.close()
    return {"workers": workers, "steps": steps, "images_per_s": round(images_per_s, 1),
            "skip_examples_per_s": round(read / seconds, 1), "examples": count, "skipped": read,
            "buffer_size": buffer_size, "shards": len(parquet_files)}


def main(argv=None) -> dict:
    """Run the data-loading benchmark with `argv` (default: the process's arguments); returns the results.

    Example:

    >>> import tempfile
    >>> result = main(["--output", tempfile.mkdtemp(), "--images", "4", "--batch-size", "2", "--steps", "1",
    ...                "--rounds", "1", "--workers", "1", "--measure", "loading"])  # doctest: +ELLIPSIS
    {...}
    >>> sorted(result["loading"])
    ['1']
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="folder for the generated data and results.json")
    parser.add_argument("--images", type=int, default=1024, help="CelebA-style images to write")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="batches (training steps) per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per setting (the median is reported)")
    parser.add_argument("--workers", nargs="+", default=["1", "2", "4"],
                        help="worker settings: N threads, or pN processes (e.g. 1 2 4 p2); training also measures "
                        "'preloaded' (batches preprocessed beforehand: no loading cost)")
    parser.add_argument("--processes", type=int, nargs="*", default=[], help="also pN for these N")
    parser.add_argument("--measure", nargs="+", default=["loading", "training", "streaming"],
                        choices=["loading", "training", "streaming"])
    parser.add_argument("--buffer-size", type=int, default=100, help="streaming: the shuffle buffer")
    parser.add_argument("--shards", type=int, default=4, help="streaming: Parquet shards to write")
    parser.add_argument("--num-scales", type=int, default=1, help="training: the model's scales")
    parser.add_argument("--filters", type=int, default=4, help="training: the model's hidden feature maps")
    args = parser.parse_args(argv)

    import keras

    from keras_realnvp.data.sources import open_source

    output = Path(args.output)
    folder = write_celeba_like(output / "images", args.images)
    settings = list(args.workers) + [f"p{n}" for n in args.processes]
    result = {"cpu": cpu_name(), "backend": keras.backend.backend(), "images": args.images,
              "batch_size": args.batch_size, "steps": args.steps, "rounds": args.rounds}
    source = open_source(str(folder), {"held_out_every": 10**9}, "train")
    for kind in ("loading", "training"):
        if kind not in args.measure:
            continue
        if kind == "loading":
            measure = functools.partial(loading_rate, source, steps=args.steps, batch_size=args.batch_size)
        else:
            trainer = Trainer(source, args.batch_size, args.num_scales, args.filters)
            measure = functools.partial(trainer.fit, steps=args.steps)
            result["model"] = {"image_shape": [64, 64, 3], "num_scales": args.num_scales, "filters": args.filters,
                               "num_blocks": 1}
        kind_settings = settings + (["preloaded"] if kind == "training" else [])
        rates = {s: [] for s in kind_settings}
        for _ in range(args.rounds):  # settings interleaved: a change in the machine's load hits them all
            for s in kind_settings:
                rates[s].append(measure(s))
        unit = "batches_per_s" if kind == "loading" else "steps_per_s"
        result[kind] = {s: {unit: round(statistics.median(r), 3), "rounds": [round(x, 3) for x in r]}
                        for s, r in rates.items()}
    if "streaming" in args.measure:
        shards = write_parquet_shards(folder, output / "parquet", args.shards)
        threads = [_settings(s)[0] for s in settings if not s.startswith("p")]
        runs = {workers: [] for workers in threads}
        for _ in range(args.rounds):
            for workers in threads:
                runs[workers].append(streaming_rates(shards, workers, args.steps, args.batch_size, args.buffer_size))
        result["streaming"] = []
        for rounds in runs.values():
            entry = dict(rounds[0])
            for key in ("images_per_s", "skip_examples_per_s"):
                entry[key] = round(statistics.median(r[key] for r in rounds), 1)
                entry[f"{key}_rounds"] = [r[key] for r in rounds]
            result["streaming"].append(entry)
    (output / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
