"""The paper's preprocessing on images of the real sizes, and local folders through `datasets`."""

import numpy as np
import pytest
from PIL import Image

from keras_realnvp.data.preprocessing import celeba_crop, crop_origin, lsun_resize_crop, preprocess
from keras_realnvp.data.sources import open_source
from keras_realnvp.data.training_batches import TrainingBatches, evaluation_images


def _coordinates_image(height, width):
    """Pixel (r, c) holds (r, c, 0): crops can be located exactly."""
    rows, cols = np.indices((height, width))
    return np.stack([rows, cols, np.zeros_like(rows)], axis=-1).astype(np.uint8)


def test_celeba_crop_takes_rows_40_to_188_and_columns_15_to_163():
    image = _coordinates_image(218, 178)
    # Resizing 148 -> 148 keeps the pixels, so the crop position is visible exactly.
    crop = celeba_crop(image, size=148)
    assert crop.shape == (148, 148, 3)
    assert (crop[0, 0, 0], crop[0, 0, 1], crop[-1, -1, 0], crop[-1, -1, 1]) == (40, 15, 187, 162)
    small = preprocess(image, "celeba", (64, 64, 3), rng=None, flips=False)
    assert small.shape == (64, 64, 3) and small.dtype == np.uint8
    # Area averaging of the 148x148 crop: the top-left output pixel averages rows 40..42.
    assert 40 <= small[0, 0, 0] <= 42 and 15 <= small[0, 0, 1] <= 17
    with pytest.raises(ValueError, match="218x178"):
        celeba_crop(_coordinates_image(200, 178))


@pytest.mark.parametrize("height,width", [(256, 341), (300, 256), (96, 96), (480, 640)])
def test_lsun_shortest_side_96_then_64_crop(height, width):
    image = _coordinates_image(height, width)
    central = lsun_resize_crop(image, rng=None)
    assert central.shape == (64, 64, 3)
    scale = 96 / min(height, width)
    new_h, new_w = max(96, round(height * scale)), max(96, round(width * scale))
    top, left = crop_origin((new_h, new_w), 64, None)
    assert (top, left) == ((new_h - 64) // 2, (new_w - 64) // 2)
    # The central crop's top-left pixel comes from about (top / scale, left / scale).
    if height <= 255 and width <= 255:
        assert abs(int(central[0, 0, 0]) - top / scale) <= 2 and abs(int(central[0, 0, 1]) - left / scale) <= 2
    origins = {crop_origin((new_h, new_w), 64, np.random.default_rng(i)) for i in range(20)}
    assert all(0 <= t <= new_h - 64 and 0 <= c <= new_w - 64 for t, c in origins)
    if max(new_h, new_w) > 64:
        assert len(origins) > 1  # random crops in training


def test_flips_are_seeded_and_only_in_training():
    image = _coordinates_image(64, 64)
    flipped = [preprocess(image, "none", (64, 64, 3), np.random.default_rng(i), flips=True)[0, 0, 1] for i in range(20)]
    assert set(flipped) == {0, 63}
    assert preprocess(image, "none", (64, 64, 3), None, flips=True)[0, 0, 1] == 0
    a = preprocess(image, "none", (64, 64, 3), np.random.default_rng(5), flips=True)
    b = preprocess(image, "none", (64, 64, 3), np.random.default_rng(5), flips=True)
    np.testing.assert_array_equal(a, b)


def test_local_image_folder_trains_through_the_same_pipeline(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(40):
        sub = tmp_path / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        mode = "L" if i == 3 else "RGB"  # a grayscale image in an RGB set is converted
        pixels = rng.integers(0, 256, (218, 178) if mode == "L" else (218, 178, 3), dtype=np.uint8)
        Image.fromarray(pixels, mode).save(sub / f"img{i:02d}.png")
    spec = {"preprocessing": "celeba", "held_out_every": 10}
    train, held_out = open_source(str(tmp_path), spec, "train"), open_source(str(tmp_path), spec, "eval")
    assert (len(train), len(held_out)) == (36, 4)
    batches = TrainingBatches(train, (64, 64, 3), 8, seed=0, start_step=0, num_steps=5, preprocessing="celeba",
                              flips=True)
    (batch,) = batches[4]
    assert batch.shape == (8, 64, 64, 3) and batch.dtype == np.uint8
    assert evaluation_images(held_out, (64, 64, 3), "celeba").shape == (4, 64, 64, 3)


def test_unreadable_image_and_empty_folder_are_reported_by_name(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is empty"):
        open_source(str(tmp_path / "empty"), {}, "train")
    good = tmp_path / "data"
    good.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(good / f"ok{i}.png")
    data = (good / "ok1.png").read_bytes()
    (good / "ok1.png").write_bytes(data[: len(data) // 2])  # truncated
    source = open_source(str(good), {"held_out_every": 100}, "train")
    with pytest.raises(ValueError, match=r"Cannot read image .*ok1.png"):
        [source[i] for i in range(len(source))]


def test_attribute_labels_from_columns_or_one_list_column_follow_the_batches(tmp_path):
    # A local folder laid out like the Hub's CelebA: one column per attribute, here CelebA's -1/1
    # values (the Hub copy has booleans; both map to {0, 1}), plus the same attributes as one list.
    import json

    from keras_realnvp.data.sources import source_labels
    from keras_realnvp.hub import preset_metadata

    spec = dict(preset_metadata("celeba_64_conditional")["dataset"], held_out_every=5)
    names = spec["label_columns"]
    assert len(names) == 40 and names[20] == "Male"
    rng = np.random.default_rng(0)
    attributes = rng.integers(0, 2, (10, 40))
    with open(tmp_path / "metadata.jsonl", "w") as f:
        for i in range(10):
            Image.fromarray(np.full((218, 178, 3), 20 * i, np.uint8)).save(tmp_path / f"{i}.png")
            row = {"file_name": f"{i}.png", **{n: int(2 * a - 1) for n, a in zip(names, attributes[i])}}
            f.write(json.dumps({**row, "attributes": attributes[i].astype(bool).tolist()}) + "\n")
    train = open_source(str(tmp_path), spec, "train")
    labels, label_names = source_labels(train, spec, 40)
    assert label_names == names and labels.dtype == np.float32
    # Every 5th image is held out (rows 4 and 9): the training rows are 0-3 and 5-8, in that order.
    np.testing.assert_array_equal(labels, attributes[[0, 1, 2, 3, 5, 6, 7, 8]])
    as_list, _ = source_labels(train, {"attribute_column": "attributes", "held_out_every": 5}, 40)
    np.testing.assert_array_equal(as_list, labels)
    # The labels of a batch are those of its images: pixel value 20 * i marks image i.
    batches = TrainingBatches(train, (64, 64, 3), 4, seed=3, start_step=0, num_steps=2, preprocessing="celeba",
                              labels=labels)
    for step in range(2):
        (inputs,) = batches[step]
        image_numbers = inputs["images"][:, 0, 0, 0] // 20
        np.testing.assert_array_equal(inputs["labels"], attributes[image_numbers])
    held_out = open_source(str(tmp_path), spec, "eval")
    held_out_labels, _ = source_labels(held_out, spec, 40)
    pixels, eval_labels = evaluation_images(held_out, (64, 64, 3), "celeba", labels=held_out_labels)
    assert pixels.shape == (2, 64, 64, 3)
    np.testing.assert_array_equal(eval_labels, attributes[[4, 9]])
    with pytest.raises(ValueError, match="40 attribute columns but the model has label_dim=2"):
        source_labels(train, spec, 2)


def test_class_labels_of_sub_folders_and_of_the_embedded_photos(tmp_path):
    from keras_realnvp.data.sources import source_labels

    for i in range(6):
        folder = tmp_path / ("cats" if i < 4 else "dogs")
        folder.mkdir(exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(folder / f"{i}.png")
    source = open_source(str(tmp_path), {"held_out_every": 100}, "train")
    labels, names = source_labels(source, {}, 2)
    assert names == ["cats", "dogs"]
    image_numbers = [int(np.asarray(source[k])[0, 0, 0]) for k in range(len(source))]
    np.testing.assert_array_equal(labels.argmax(axis=1), [0 if n < 4 else 1 for n in image_numbers])
    assert labels.sum() == 6
    with pytest.raises(ValueError, match="has 2 classes .*cats, dogs.*label_dim=3"):
        source_labels(source, {}, 3)
    embedded, names = source_labels(open_source("embedded", {"patch_size": 16}, "train"), {}, 2)
    assert names == ["china", "flower"] and set(embedded.sum(axis=0)) != {0.0}
    unlabelled = open_source(str(tmp_path / "cats"), {"held_out_every": 100}, "train")
    with pytest.raises(ValueError, match="no labels for a conditional model"):
        source_labels(unlabelled, {}, 2)
    with pytest.raises(ValueError, match="must be binary"):
        from keras_realnvp.data.label_columns import binary_attributes

        binary_attributes([0, 2], "in a test")


def _as_fit_reads(batches) -> list:
    """The batches in the order `model.fit` receives them: through Keras' PyDataset adapter and its
    ordered enqueuer (worker threads, or processes with `use_multiprocessing`)."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(batches, shuffle=False)
    adapter.on_epoch_begin()
    got = list(adapter.get_numpy_iterator())
    adapter.on_epoch_end()
    return got


@pytest.mark.parametrize("workers, processes", [(2, False), (4, False), (2, True)])
def test_the_batches_are_the_same_whatever_the_worker_count(tmp_path, workers, processes):
    from keras_realnvp.data.sources import source_labels

    rng = np.random.default_rng(1)
    for i in range(24):
        folder = tmp_path / ("a" if i % 3 else "b")
        folder.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(folder / f"{i:02d}.jpg")
    source = open_source(str(tmp_path), {"held_out_every": 1000}, "train")
    labels, _ = source_labels(source, {}, 2)
    arguments = (source, (64, 64, 3), 4, 7, 3, 9, "celeba", True)  # passes 0 to 2 of 6 batches each
    serial = TrainingBatches(*arguments, labels=labels)
    expected = [serial[i][0] for i in range(9)]
    parallel = TrainingBatches(*arguments, labels=labels, workers=workers, use_multiprocessing=processes,
                               max_queue_size=3)
    got = _as_fit_reads(parallel)
    assert len(got) == 9
    for (inputs,), wanted in zip(got, expected, strict=True):
        np.testing.assert_array_equal(inputs["images"], wanted["images"])
        np.testing.assert_array_equal(inputs["labels"], wanted["labels"])
    assert _as_fit_reads(TrainingBatches(*arguments, labels=labels))[4][0]["images"].tobytes() == \
        expected[4]["images"].tobytes()  # the adapter itself changes nothing
