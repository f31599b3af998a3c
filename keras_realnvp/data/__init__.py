"""Datasets that ship with the package: real photo patches, no download needed."""

from keras_realnvp.data.array_batches import shuffled_batches
from keras_realnvp.data.embedded import dequantize_numpy, embedded_patch_origins, load_embedded_patches

__all__ = ["dequantize_numpy", "embedded_patch_origins", "load_embedded_patches", "shuffled_batches"]
