"""Shared pieces of the experiments: argument checks, batched decoding, side-by-side pictures."""

import numpy as np
from keras import ops

from keras_realnvp.models import input_checks
from keras_realnvp.models.realnvp import RealNVP


def check_model(model, what="model"):
    if not isinstance(model, RealNVP):
        raise ValueError(f"{what} must be a keras_realnvp.RealNVP, got {type(model).__name__}.")
    return model


# The model's own checks (one version, keras_realnvp.models.input_checks), so that a call here
# and the same call on the model get the same error.
check_positive_int = input_checks.check_count
check_temperature = input_checks.check_temperature


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def as_numpy_batch(x, what):
    """`x` (list, numpy array or tensor) as a numpy array with a leading batch axis; checked later."""
    try:
        x = to_numpy(x) if hasattr(x, "shape") else np.asarray(x)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be a numeric array: {error}") from None
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"{what} must be a non-empty batch, got shape {x.shape}.")
    return x


def slice_labels(labels, start, stop):
    return None if labels is None else labels[start:stop]


def encode_in_batches(model, images, labels=None, batch_size=64):
    """`model.encode` over slices of `batch_size`; numpy latents, one array per scale."""
    batch_size = check_positive_int(batch_size, "batch_size")
    parts = [
        [to_numpy(z) for z in model.encode(images[i : i + batch_size], labels=slice_labels(labels, i, i + batch_size))]
        for i in range(0, len(images), batch_size)
    ]
    return [np.concatenate(scale, axis=0) for scale in zip(*parts, strict=True)]


def decode_in_batches(model, latents, labels=None, batch_size=64):
    """`model.decode` over slices of `batch_size`; a numpy array of pixel values (not clipped)."""
    batch_size = check_positive_int(batch_size, "batch_size")
    latents = [to_numpy(z) for z in input_checks.check_latent_list(latents, model.num_scales, model.image_shape[-1])]
    count = len(latents[0])
    parts = [
        to_numpy(model.decode([z[i : i + batch_size] for z in latents], labels=slice_labels(labels, i, i + batch_size)))
        for i in range(0, count, batch_size)
    ]
    return np.concatenate(parts, axis=0)


def as_label_array(labels, model, count, what="labels"):
    """Labels as a float numpy array `(count, label_dim)`, or `None` for unconditional models."""
    if labels is None:
        if model.label_dim is not None:
            raise ValueError(f"This model is conditional: pass {what} of shape ({count}, {model.label_dim}).")
        return None
    if model.label_dim is None:
        raise ValueError(f"This model is not conditional (label_dim=None) but {what} were given.")
    labels = to_numpy(labels) if hasattr(labels, "shape") else np.asarray(labels)
    if labels.shape != (count, model.label_dim):
        raise ValueError(f"{what} must have shape ({count}, {model.label_dim}), got {labels.shape}.")
    return labels.astype(model.compute_dtype)


def side_by_side(pictures, padding=4):
    """Place uint8 pictures `(H_i, W_i, C)` left to right, top-aligned, `padding` black between."""
    height = max(p.shape[0] for p in pictures)
    channels = pictures[0].shape[-1]
    padded = [np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0))) for p in pictures]
    gap = np.zeros((height, padding, channels), np.uint8)
    parts = [gap]
    for p in padded:
        parts += [p, gap]
    picture = np.concatenate(parts, axis=1)
    border = np.zeros((padding, picture.shape[1], channels), np.uint8)
    return np.concatenate([border, picture, border], axis=0)
