"""Turning batches of pixel values into pictures."""

from keras_realnvp.visualization.image_grid import image_grid, save_image_grid

__all__ = ["image_grid", "save_image_grid"]
