"""The paper's experiments (section 4.2 and appendices C, D, F; figure 1) as functions and pictures.

Each function returns numpy arrays: decoded images (pixel values, not clipped) or uint8
pictures (`*_grid`, `toy_figure`), which clip for display only. Write a picture with
`keras_realnvp.visualization.save_image_grid(picture[None], path, padding=0, scale=4)`.

Example:

>>> import numpy as np
>>> from keras_realnvp import RealNVP, experiments
>>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
>>> x = np.random.default_rng(0).uniform(0, 256, (4, 8, 8, 1)).astype("float32")
>>> experiments.manifold(model, x, num_steps=4).shape
(4, 4, 8, 8, 1)
>>> experiments.compress(model, x, keep_fraction=0.25, seed=0).shape
(4, 8, 8, 1)
"""

from keras_realnvp.experiments.attributes import swap_attributes, swap_grid
from keras_realnvp.experiments.compression import (
    PAPER_FRACTIONS,
    compress,
    compression_grid,
    kept_channels,
    kept_fraction,
)
from keras_realnvp.experiments.conditional_training import train_photo_conditional
from keras_realnvp.experiments.labels import one_hot, recorded_label_names, requested_labels
from keras_realnvp.experiments.manifold import (
    manifold,
    manifold_angles,
    manifold_grid,
    manifold_image_cells,
    manifold_latents,
)
from keras_realnvp.experiments.sampling import extrapolate, sample_grid, sample_in_batches
from keras_realnvp.experiments.toy import toy_figure, train_toy

__all__ = [
    "PAPER_FRACTIONS",
    "compress",
    "compression_grid",
    "extrapolate",
    "kept_channels",
    "kept_fraction",
    "manifold",
    "manifold_angles",
    "manifold_grid",
    "manifold_image_cells",
    "manifold_latents",
    "one_hot",
    "recorded_label_names",
    "requested_labels",
    "sample_grid",
    "sample_in_batches",
    "swap_attributes",
    "swap_grid",
    "toy_figure",
    "train_photo_conditional",
    "train_toy",
]
