"""Tiling image batches into one picture, and writing it as a PNG."""

import keras
import numpy as np
import pytest
from PIL import Image

from keras_realnvp.visualization import image_grid, save_image_grid


def test_grid_layout_is_exact_for_a_small_hand_made_batch():
    images = np.array([[[1, 2], [3, 4]], [[5, 6], [7, 8]], [[9, 10], [11, 12]]], np.uint8)[..., None]
    grid = image_grid(images, num_columns=2, padding=1)
    expected = np.array(
        [
            [0, 0, 0, 0, 0, 0, 0],
            [0, 1, 2, 0, 5, 6, 0],
            [0, 3, 4, 0, 7, 8, 0],
            [0, 0, 0, 0, 0, 0, 0],
            [0, 9, 10, 0, 0, 0, 0],
            [0, 11, 12, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        np.uint8,
    )[..., None]
    assert grid.dtype == np.uint8
    np.testing.assert_array_equal(grid, expected)


def test_rgb_tiles_keep_their_channels_and_padding_zero_concatenates():
    images = np.stack([np.full((2, 3, 3), [10 * i, 10 * i + 1, 10 * i + 2]) for i in range(4)]).astype(np.uint8)
    grid = image_grid(images, num_columns=4, padding=0)
    assert grid.shape == (2, 12, 3)
    np.testing.assert_array_equal(grid, np.concatenate(list(images), axis=1))


def test_default_columns_are_the_ceiling_of_the_square_root():
    images = np.ones((5, 4, 6, 3), np.uint8)
    grid = image_grid(images, padding=2)  # 3 columns, 2 rows
    assert grid.shape == (2 * (4 + 2) + 2, 3 * (6 + 2) + 2, 3)
    assert image_grid(np.ones((1, 4, 6, 1))).shape == (6, 8, 1)


def test_values_are_floored_and_clipped_for_display():
    values = np.array([-14.2, -0.5, 0.99, 17.999, 254.9, 255.5, 270.1, 300.0], np.float32)
    grid = image_grid(values.reshape(1, 1, 8, 1), padding=0)
    np.testing.assert_array_equal(grid[0, :, 0], [0, 0, 0, 17, 254, 255, 255, 255])


def test_backend_tensors_give_the_same_grid_as_numpy():
    images = np.random.default_rng(0).uniform(-5, 260, (3, 4, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(image_grid(keras.ops.convert_to_tensor(images)), image_grid(images))


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((4, 4, 3)), "rank 4"),
        (np.zeros((1, 2, 4, 4, 3)), "rank 4"),
        (np.zeros((2, 4, 4, 2)), "1 or 3 channels"),
        (np.zeros((2, 4, 4, 4)), "1 or 3 channels"),
        (np.zeros((0, 4, 4, 3)), "non-empty"),
        (np.array([[[[np.nan]]]]), "NaN"),
        (np.array([[[[np.inf]]]]), "NaN or infinite"),
        (np.zeros((1, 2, 2, 1), bool), "numeric"),
    ],
)
def test_bad_images_are_rejected(images, match):
    with pytest.raises(ValueError, match=match):
        image_grid(images)


@pytest.mark.parametrize("kwargs", [{"num_columns": 0}, {"num_columns": 1.5}, {"padding": -1}, {"padding": True}])
def test_bad_layout_arguments_are_rejected(kwargs):
    with pytest.raises(ValueError, match="must be (a positive|an) integer"):
        image_grid(np.zeros((2, 4, 4, 3)), **kwargs)


def test_saved_png_reads_back_scaled_with_nearest_neighbour(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    path = save_image_grid(images, tmp_path / "new" / "folder" / "grid.png", num_columns=3, scale=4)
    assert path == tmp_path / "new" / "folder" / "grid.png"
    grid = image_grid(images, num_columns=3)
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.mode == "RGB"
        assert picture.size == (4 * (3 * 17 + 1), 4 * (2 * 17 + 1))
        pixels = np.asarray(picture)
    np.testing.assert_array_equal(pixels, np.repeat(np.repeat(grid, 4, axis=0), 4, axis=1))


def test_grayscale_grid_is_saved_as_a_grayscale_png(tmp_path):
    images = np.arange(2 * 3 * 3).reshape(2, 3, 3, 1) * 10.5
    path = save_image_grid(images, str(tmp_path / "gray.png"), padding=0)
    with Image.open(path) as picture:
        assert picture.mode == "L" and picture.size == (6, 3)
        np.testing.assert_array_equal(np.asarray(picture), image_grid(images, padding=0)[..., 0])


@pytest.mark.parametrize("scale", [0, -2, 1.5, True])
def test_bad_scale_is_rejected_before_anything_is_written(tmp_path, scale):
    with pytest.raises(ValueError, match="scale must be a positive integer"):
        save_image_grid(np.zeros((1, 4, 4, 3)), tmp_path / "sub" / "x.png", scale=scale)
    assert not (tmp_path / "sub").exists()
