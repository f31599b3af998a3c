"""Bad data in the pipeline: converted as documented, or reported with the file's name.

Every case writes real files into a temporary folder and reads them through
`open_source` and `TrainingBatches` / `evaluation_images`, as training does: an image
in another mode is converted (see `keras_realnvp.data.preprocessing`), and anything
unusable raises a `ValueError` naming the file; nothing is skipped silently.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_realnvp.data.preprocessing import preprocess, to_array
from keras_realnvp.data.sources import ArraySource, open_source
from keras_realnvp.data.training_batches import TrainingBatches, evaluation_images

ROOT = Path(__file__).resolve().parents[2]
SPEC = {"held_out_every": 1000}  # everything in the train split


def _read_all(folder, image_shape=(8, 8, 3), preprocessing="none"):
    source = open_source(str(folder), {**SPEC, "preprocessing": preprocessing}, "train")
    batches = TrainingBatches(source, image_shape, batch_size=len(source), seed=0, start_step=0, num_steps=1,
                              preprocessing=preprocessing)
    return source, batches[0][0]


def _by_name(folder, names, image_shape=(8, 8, 3)):
    """Each file's preprocessed pixels, keyed by file name (evaluation order is the source's)."""
    source = open_source(str(folder), SPEC, "train")
    pixels = evaluation_images(source, image_shape)
    paths = [Path(source.dataset[int(r)][source.image_column]["path"]).name for r in source.rows]
    assert sorted(paths) == sorted(names)
    return dict(zip(paths, pixels))


def _save(folder, name, image, **kwargs):
    folder.mkdir(parents=True, exist_ok=True)
    image.save(folder / name, **kwargs)
    return folder / name


def test_other_modes_are_converted_to_rgb_as_documented(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    alpha = np.full((8, 8), 17, np.uint8)
    _save(tmp_path, "rgb.png", Image.fromarray(rgb))
    _save(tmp_path, "gray.png", Image.fromarray(gray, "L"))
    _save(tmp_path, "rgba.png", Image.fromarray(np.dstack([rgb, alpha]), "RGBA"))
    _save(tmp_path, "la.png", Image.fromarray(np.dstack([gray, alpha]), "LA"))
    _save(tmp_path, "sixteen.png", Image.fromarray(gray.astype(np.uint16) * 257))  # 16-bit grayscale PNG
    _save(tmp_path, "palette.png", Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16))
    _save(tmp_path, "bilevel.png", Image.fromarray(gray > 100).convert("1"))
    _save(tmp_path, "cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), quality=95)
    names = ["rgb.png", "gray.png", "rgba.png", "la.png", "sixteen.png", "palette.png", "bilevel.png", "cmyk.jpg"]
    pixels = _by_name(tmp_path, names)
    assert all(p.shape == (8, 8, 3) and p.dtype == np.uint8 for p in pixels.values())
    np.testing.assert_array_equal(pixels["rgb.png"], rgb)
    np.testing.assert_array_equal(pixels["rgba.png"], rgb)  # alpha dropped, colors as stored
    for name in ("gray.png", "la.png", "sixteen.png"):  # the gray value in all three channels
        np.testing.assert_array_equal(pixels[name], np.repeat(gray[..., None], 3, axis=-1), err_msg=name)
    np.testing.assert_array_equal(pixels["bilevel.png"], np.repeat(np.where(gray > 100, 255, 0)[..., None], 3, -1))
    palette = np.asarray(Image.open(tmp_path / "palette.png").convert("RGB"))
    np.testing.assert_array_equal(pixels["palette.png"], palette)
    # CMYK through a JPEG: lossy and a naive conversion, so only roughly the colors.
    assert np.abs(pixels["cmyk.jpg"].astype(int) - rgb).mean() < 40


def test_color_images_become_luminance_for_a_gray_model(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    _save(tmp_path, "color.png", Image.fromarray(rgb))
    _save(tmp_path, "rgba.png", Image.fromarray(np.dstack([rgb, np.zeros((8, 8), np.uint8)]), "RGBA"))
    pixels = _by_name(tmp_path, ["color.png", "rgba.png"], image_shape=(8, 8, 1))
    luminance = np.asarray(Image.fromarray(rgb).convert("L"))[..., None]
    for name in ("color.png", "rgba.png"):
        np.testing.assert_array_equal(pixels[name], luminance)


def _folder_with(tmp_path, name, data, count=3):
    folder = tmp_path / "data"
    for i in range(count):
        _save(folder, f"ok{i}.png", Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)))
    bad = folder / name
    bad.write_bytes(data(folder) if callable(data) else data)
    return folder


def _truncated(folder):
    noise = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)  # incompressible pixel data
    _save(folder, "tmp.png", Image.fromarray(noise))
    data = (folder / "tmp.png").read_bytes()
    (folder / "tmp.png").unlink()
    return data[: len(data) // 2]


def _float_tiff(folder):
    Image.fromarray(np.full((8, 8), 0.5, np.float32), "F").save(folder / "tmp.tiff")
    data = (folder / "tmp.tiff").read_bytes()
    (folder / "tmp.tiff").unlink()
    return data


def _huge_int_tiff(folder):
    Image.fromarray(np.full((8, 8), 10**6, np.int32), "I").save(folder / "tmp.tiff")
    data = (folder / "tmp.tiff").read_bytes()
    (folder / "tmp.tiff").unlink()
    return data


BROKEN = {
    "truncated.png": (_truncated, "Cannot read image .*truncated.png"),
    "empty.png": (b"", "Cannot read image .*empty.png"),
    "random.jpg": (bytes(range(256)) * 4, "Cannot read image .*random.jpg"),
    "text.png": (b"this is not a picture\n", "Cannot read image .*text.png"),
    "float.tiff": (_float_tiff, "float.tiff.*32-bit float image \\(mode F\\) has no 8-bit pixel scale"),
    "wide_int.tiff": (_huge_int_tiff, "wide_int.tiff.*32-bit integer image \\(mode I\\) with values in \\[1000000"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_unusable_files_are_reported_by_name(tmp_path, name):
    data, message = BROKEN[name]
    folder = _folder_with(tmp_path, name, data)
    with pytest.raises(ValueError, match=message):
        _read_all(folder)
    source = open_source(str(folder), SPEC, "train")
    with pytest.raises(ValueError, match=message):
        evaluation_images(source, (8, 8, 3))


@pytest.mark.parametrize("name", ["truncated.png", "text.png", "float.tiff"])
def test_a_streamed_folder_reports_unusable_files_by_name_too(tmp_path, name):
    from keras_realnvp.data.streaming_batches import StreamingBatches

    data, message = BROKEN[name]
    folder = _folder_with(tmp_path, name, data)
    source = open_source(str(folder), SPEC, "train", streaming=True, buffer_size=2)
    batches = StreamingBatches(source, (8, 8, 3), len(source), seed=0, start_step=0, num_steps=1)
    with pytest.raises(ValueError, match=message):
        batches[0]
    with pytest.raises(ValueError, match=message):
        evaluation_images(source, (8, 8, 3))  # the training split in stored order: every file is read


def test_an_image_of_the_wrong_size_is_reported_by_name(tmp_path):
    folder = _folder_with(tmp_path, "small.png", lambda f: b"")
    (folder / "small.png").unlink()
    _save(folder, "small.png", Image.fromarray(np.zeros((6, 8, 3), np.uint8)))
    with pytest.raises(ValueError, match=r"Image .*small.png.*shape \(6, 8, 3\) does not match .*\(8, 8, 3\)"):
        _read_all(folder)
    with pytest.raises(ValueError, match=r"Image .*data/\w+.png of image folder .*: CelebA preprocessing expects"):
        evaluation_images(open_source(str(folder), SPEC, "train"), (64, 64, 3), "celeba")


def test_empty_folders_and_folders_without_images_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"The image folder .*empty is empty"):
        open_source(str(tmp_path / "empty"), SPEC, "train")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "README.txt").write_text("no pictures here")
    with pytest.raises(ValueError, match=r"has no image files \(by extension\); it holds README.txt"):
        open_source(str(notes), SPEC, "train")


def test_files_that_are_not_images_are_named_in_a_warning(tmp_path):
    folder = _folder_with(tmp_path, "notes.txt", b"hello")
    (folder / "weights.bin").write_bytes(b"\x00")
    with pytest.warns(UserWarning, match=r"2 files in the image folder .* are not images and are ignored: "
                                         r"notes.txt, weights.bin"):
        source = open_source(str(folder), SPEC, "train")
    assert len(source) == 3


ARRAYS = {
    "two_channels": (np.full((8, 8, 2), 9, np.uint8), None),
    "four_channels": (np.dstack([np.full((8, 8, 3), 9, np.uint8), np.zeros((8, 8), np.uint8)]), None),
    "two_dimensional": (np.full((8, 8), 9, np.uint8), None),
    "sixteen_bit": (np.full((8, 8, 3), 9 * 257, np.uint16), None),
    "five_channels": (np.zeros((8, 8, 5), np.uint8), "1 to 4 channels, got shape \\(8, 8, 5\\)"),
    "float": (np.zeros((8, 8, 3), np.float32), "uint8 \\(or 16-bit uint16\\) pixels, got dtype float32"),
    "bool": (np.zeros((8, 8, 3), bool), "got dtype bool"),
    "int64": (np.zeros((8, 8, 3), np.int64), "got dtype int64"),
    "rank_four": (np.zeros((1, 8, 8, 3, 1), np.uint8), "got shape \\(1, 8, 8, 3, 1\\)"),
}


@pytest.mark.parametrize("case", sorted(ARRAYS))
def test_in_memory_arrays_are_converted_or_refused(case):
    array, message = ARRAYS[case]
    source = ArraySource(np.stack([array, array]), case)
    if message is None:
        batch = TrainingBatches(source, (8, 8, 3), 2, seed=0, start_step=0, num_steps=1)[0][0]
        assert batch.shape == (2, 8, 8, 3) and batch.dtype == np.uint8
        np.testing.assert_array_equal(batch, 9)
    else:
        with pytest.raises(ValueError, match=message):
            evaluation_images(source, (8, 8, 3))


def test_unsupported_channel_counts_and_preprocessings_are_refused():
    with pytest.raises(ValueError, match="Only 1- or 3-channel images are supported, got channels=4"):
        to_array(np.zeros((8, 8, 4), np.uint8), channels=4)
    with pytest.raises(ValueError, match="Unknown preprocessing 'imagenet'"):
        preprocess(np.zeros((8, 8, 3), np.uint8), "imagenet", (8, 8, 3), None, flips=False)


def test_the_train_tool_names_the_broken_file_and_exits_cleanly(tmp_path):
    folder = tmp_path / "data"
    for i in range(20):  # row 19, the only held-out one with the default held_out_every=20, is broken
        _save(folder, f"img{i:02d}.png", Image.fromarray(np.full((16, 16, 3), 10 * i, np.uint8)))
    (folder / "img19.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    command = [sys.executable, str(ROOT / "tools" / "train.py"), "--dataset", str(folder), "--output",
               str(tmp_path / "run"), "--filters", "4", "--num-blocks", "1", "--batch-size", "4", "--epochs", "1",
               "--steps-per-epoch", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Cannot read image ") and "img19.png" in last, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
