"""Local image folders with split sub-folders (train/, test/, validation/...), and without.

Each image's red value at (0, 0) is its number, so every test can tell which files a
split read. `datasets`' own split detection would also take a class folder named "test"
inside train/ for a split (and file names such as test_1.png); these tests pin down
that only the folder's own sub-folders are splits.
"""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_realnvp.data.image_folders import folder_splits
from keras_realnvp.data.sources import open_source, source_labels
from keras_realnvp.data.training_batches import TrainingBatches, evaluation_images


def _write(root: Path, names) -> dict[str, int]:
    """One 8x8 PNG per relative name, numbered in order; returns name -> number."""
    for number, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), number, np.uint8)).save(path)
    return {name: number for number, name in enumerate(names)}


def _names(source, root) -> list[str]:
    """The relative file names of a random-access folder source, in its order."""
    paths = [source.dataset[int(r)][source.image_column]["path"] for r in source.rows]
    return [Path(p).relative_to(root).as_posix() for p in paths]


def _numbers(images) -> list[int]:
    return [int(image[0, 0, 0]) for image in images]


def _layout(classes=("cats", "dogs", "test"), per_class=3, splits=("train", "test")):
    return [f"{split}/{c}/{i}.png" for split in splits for c in classes for i in range(per_class)]


def test_train_and_test_folders_are_the_splits_and_their_class_folders_the_labels(tmp_path):
    numbers = _write(tmp_path, _layout())
    spec = {"held_out_every": 2}  # not used: the folder has a held-out split
    train, held_out = open_source(str(tmp_path), spec, "train"), open_source(str(tmp_path), spec, "eval")
    # train/test/ is a class of the training split, not a split: none of it is held out.
    assert sorted(_names(train, tmp_path)) == sorted(n for n in numbers if n.startswith("train/"))
    assert sorted(_names(held_out, tmp_path)) == sorted(n for n in numbers if n.startswith("test/"))
    train_labels, names = source_labels(train, {}, 3)
    assert names == ["cats", "dogs", "test"]
    expected = [names.index(n.split("/")[1]) for n in _names(train, tmp_path)]
    np.testing.assert_array_equal(train_labels.argmax(axis=1), expected)
    eval_labels, eval_names = source_labels(held_out, {}, 3)
    assert eval_names == names  # the same class numbers in both splits
    pixels, labels = evaluation_images(held_out, (8, 8, 3), limit=4, labels=eval_labels)
    held_out_names = _names(held_out, tmp_path)
    assert _numbers(pixels) == [numbers[n] for n in held_out_names[:4]]
    np.testing.assert_array_equal(labels.argmax(axis=1), [names.index(n.split("/")[1]) for n in held_out_names[:4]])
    # Training batches come from train/ only, their labels from each image's class folder.
    by_number = {number: name for name, number in numbers.items()}
    (inputs,) = TrainingBatches(train, (8, 8, 3), 9, seed=0, start_step=0, num_steps=1, labels=train_labels)[0]
    batch_names = [by_number[k] for k in _numbers(inputs["images"])]
    assert all(n.startswith("train/") for n in batch_names) and len(set(batch_names)) == 9
    np.testing.assert_array_equal(inputs["labels"].argmax(axis=1), [names.index(n.split("/")[1]) for n in batch_names])


@pytest.mark.parametrize("folder", ["validation", "valid", "val", "dev"])
def test_every_validation_folder_name_is_the_held_out_split(tmp_path, folder):
    numbers = _write(tmp_path, [f"train/{i}.png" for i in range(4)] + [f"{folder}/{i}.png" for i in range(2)])
    assert list(folder_splits(tmp_path)) == ["train", "validation"]
    held_out = open_source(str(tmp_path), {}, "eval")
    assert _names(held_out, tmp_path) == [f"{folder}/0.png", f"{folder}/1.png"]
    assert len(open_source(str(tmp_path), {}, "train")) == 4
    assert _numbers(evaluation_images(held_out, (8, 8, 3))) == [numbers[f"{folder}/0.png"], numbers[f"{folder}/1.png"]]


def test_validation_is_held_out_before_test_unless_the_spec_names_test(tmp_path):
    _write(tmp_path, ["train/0.png", "train/1.png", "val/0.png", "test/0.png", "test/1.png"])
    assert list(folder_splits(tmp_path)) == ["train", "validation", "test"]
    assert _names(open_source(str(tmp_path), {}, "eval"), tmp_path) == ["val/0.png"]
    assert _names(open_source(str(tmp_path), {"eval_split": "valid"}, "eval"), tmp_path) == ["val/0.png"]
    assert _names(open_source(str(tmp_path), {"eval_split": "test"}, "eval"), tmp_path) == ["test/0.png",
                                                                                            "test/1.png"]


def test_without_split_folders_every_nth_image_is_held_out(tmp_path):
    # Class folders at the top, and file names that `datasets` would read as splits.
    names = [f"{c}/{i}.png" for c in ("cats", "dogs") for i in range(4)] + ["test_1.png", "train_2.png"]
    _write(tmp_path, names)
    spec = {"held_out_every": 5}
    train, held_out = open_source(str(tmp_path), spec, "train"), open_source(str(tmp_path), spec, "eval")
    everything = sorted(names)  # the folder's files, sorted by path: rows 4 and 9 are held out
    assert _names(train, tmp_path) + _names(held_out, tmp_path) == [everything[i] for i in (0, 1, 2, 3, 5, 6, 7, 8)] + [
        everything[4], everything[9]]
    assert folder_splits(tmp_path).keys() == {"train"}


def test_a_train_folder_alone_holds_out_every_nth_of_its_images(tmp_path):
    _write(tmp_path, [f"train/{c}/{i}.png" for c in ("a", "b") for i in range(5)])
    spec = {"held_out_every": 4}
    train, held_out = open_source(str(tmp_path), spec, "train"), open_source(str(tmp_path), spec, "eval")
    assert (len(train), len(held_out)) == (8, 2)
    assert _names(held_out, tmp_path) == ["train/a/3.png", "train/b/2.png"]
    assert source_labels(held_out, spec, 2)[1] == ["a", "b"]


def test_images_directly_in_the_split_folders_have_no_class_labels(tmp_path):
    # imagefolder would label them "train" and "test" after their parent folders.
    _write(tmp_path, ["train/0.png", "train/1.png", "test/0.png"])
    train = open_source(str(tmp_path), {}, "train")
    assert train.dataset.column_names == ["image"]
    with pytest.raises(ValueError, match="no labels for a conditional model"):
        source_labels(train, {}, 2)
    assert evaluation_images(open_source(str(tmp_path), {}, "eval"), (8, 8, 3)).shape == (1, 8, 8, 3)


def test_split_folders_without_a_train_folder_or_with_an_empty_split_are_refused(tmp_path):
    _write(tmp_path / "a", ["cats/0.png", "test/0.png"])
    with pytest.raises(ValueError, match=r"has the split folder\(s\) test/ but no train/ \(or training/\) folder"):
        open_source(str(tmp_path / "a"), {}, "train")
    _write(tmp_path / "b", ["train/0.png"])
    (tmp_path / "b" / "test").mkdir()
    with pytest.raises(ValueError, match=r"The split folder test/ of the image folder .*b is empty"):
        open_source(str(tmp_path / "b"), {}, "train")
    _write(tmp_path / "c", ["train/0.png"])
    (tmp_path / "c" / "valid").mkdir()
    (tmp_path / "c" / "valid" / "README.txt").write_text("nothing yet")
    with pytest.raises(ValueError, match=r"image folder .*c/valid has no image files \(by extension\); it holds "
                                         r"README.txt"):
        open_source(str(tmp_path / "c"), {}, "eval")


def test_files_outside_the_split_folders_are_named_in_a_warning_and_not_read(tmp_path):
    _write(tmp_path, ["train/0.png", "train/1.png", "test/0.png", "extra/0.png", "loose.png"])
    with pytest.warns(UserWarning, match=r"2 files of the image folder .* are outside its split folders "
                                         r"\(test/, train/\) and are ignored: extra/0.png, loose.png"):
        train = open_source(str(tmp_path), {}, "train")
    assert _names(train, tmp_path) == ["train/0.png", "train/1.png"]


def test_hidden_files_and_folders_are_left_out_as_datasets_does(tmp_path):
    _write(tmp_path, ["train/0.png", "train/.ipynb_checkpoints/0-checkpoint.png", "train/.1.png",
                      "test/__MACOSX/0.png", "test/0.png"])
    assert {split: [p.relative_to(tmp_path).as_posix() for p in files]
            for split, files in folder_splits(tmp_path).items()} == {"train": ["train/0.png"], "test": ["test/0.png"]}


def test_a_streamed_folder_reads_the_same_splits(tmp_path):
    numbers = _write(tmp_path, _layout(per_class=2))
    for split in ("train", "eval"):
        random_access = open_source(str(tmp_path), {}, split)
        streamed = open_source(str(tmp_path), {}, split, streaming=True, buffer_size=4)
        names = [Path(r["image"]["path"]).relative_to(tmp_path).as_posix() for r in streamed.records()]
        assert names == _names(random_access, tmp_path) and len(streamed) == len(random_access)
        labels, label_names = source_labels(streamed, {}, 3)
        pixels, streamed_labels = evaluation_images(streamed, (8, 8, 3), labels=labels)
        assert _numbers(pixels) == [numbers[n] for n in names] and label_names == ["cats", "dogs", "test"]
        np.testing.assert_array_equal(streamed_labels, source_labels(random_access, {}, 3)[0])
