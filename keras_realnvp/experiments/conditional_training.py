"""A small conditional Real NVP (appendix F) trained offline: the embedded photo patches, labelled by photo.

The two bundled photos are two classes (0: china.jpg, 1: flower.jpg); a model trained on
their patches with that one-hot label is what `swap_grid` needs to show `x' = g(f(x; y); y')`
without a download.

Example:

>>> model = train_photo_conditional(patch_size=8, filters=4, num_blocks=1, steps=2, batch_size=8, verbose=0)
>>> model.label_dim, model.image_shape
(2, (8, 8, 3))
"""

from keras_realnvp.data.sources import EMBEDDED_CLASS_NAMES


def train_photo_conditional(patch_size: int = 16, filters: int = 32, num_blocks: int = 2, steps: int = 300,
                            batch_size: int = 64, seed: int = 0, learning_rate: float = 1e-3, verbose: int = 2):
    """A `RealNVP` with `label_dim=2` trained on the embedded training patches, each labelled by its photo.

    The model has 2 scales and the given `filters` and `num_blocks`; it is trained for
    `steps` Adam steps (gradient norm clipped at 100, as the trainer does) on batches of
    `batch_size` patches in a `seed`-ed shuffled order, with each patch's photo one-hot
    (`EMBEDDED_CLASS_NAMES`: china, flower) as its label.

    Args:
        patch_size: side of the square RGB patches (even, at most 128).
        filters, num_blocks: the coupling networks' hidden maps and residual blocks.
        steps, batch_size, learning_rate: the training schedule.
        seed: seed of the initialization and the batch order.
        verbose: Keras' `fit` verbosity (0: silent; 2: one line).

    Returns:
        The trained `RealNVP` (not saved; `model.save(path)` keeps it).

    Example:

    >>> model = train_photo_conditional(patch_size=8, filters=4, num_blocks=1, steps=1, batch_size=4, verbose=0)
    >>> int(model.optimizer.iterations)
    1
    """
    import numpy as np

    from keras_realnvp.data import embedded_patch_origins, load_embedded_patches, shuffled_batches
    from keras_realnvp.experiments.labels import one_hot
    from keras_realnvp.models.realnvp import RealNVP
    from keras_realnvp.training.optimizer import GlobalBatchAdam

    images = load_embedded_patches("train", patch_size=patch_size)
    labels = one_hot(embedded_patch_origins("train", patch_size=patch_size)[:, 0], len(EMBEDDED_CLASS_NAMES))
    model = RealNVP(image_shape=(patch_size, patch_size, 3), num_scales=2, filters=filters, num_blocks=num_blocks,
                    label_dim=len(EMBEDDED_CLASS_NAMES), seed=seed)
    model.compile(optimizer=GlobalBatchAdam(learning_rate, global_clipnorm=100.0))
    batches = shuffled_batches(np.arange(len(images)), batch_size, seed=seed)

    def labelled():
        for (index,) in batches:  # shuffled_batches yields 1-tuples, as Keras wants
            yield ({"images": images[index], "labels": labels[index]},)

    model.fit(labelled(), epochs=1, steps_per_epoch=steps, shuffle=False, verbose=verbose)  # the generator shuffles
    return model
