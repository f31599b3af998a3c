"""The global-norm gradient clip: PyTorch's multi-tensor kernels there, Keras' formula elsewhere.

The training objective's gradient is clipped to a global norm of 100 at every step (the
authors' setting). Keras computes that norm with a square and a sum per variable and scales
each gradient on its own: on PyTorch, eagerly, a few kernels per variable for each of the
cifar10 architecture's 1,160 variables. On PyTorch `clip_by_global_norm` runs the multi-tensor
kernels of `torch.nn.utils.clip_grad_norm_` (`torch._foreach_norm`, `torch._foreach_mul`);
elsewhere it is Keras' own `reference_clip_by_global_norm`, which XLA and TensorFlow's graph
compile with the rest of the step. `tests/backend/test_gradient_clip.py` checks the two equal
on every backend.
"""

import keras


def clip_by_global_norm(grads, clip_norm):
    """`grads` scaled by `min(1, clip_norm / ||grads||)`, the norm over all of them together.

    Keras' `clip_by_global_norm`, with its handling of a norm that is not finite: the
    gradients become NaN (so that a guarded step is skipped rather than scaled to zero).
    `None` entries stay `None`.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> grads = [np.array([3.0, 0.0], "float32"), None, np.array([4.0], "float32")]
    >>> clipped = clip_by_global_norm([None if g is None else ops.convert_to_tensor(g) for g in grads], 1.0)
    >>> [None if g is None else [round(float(v), 6) for v in ops.convert_to_numpy(g)] for g in clipped]
    [[0.6, 0.0], None, [0.8]]
    """
    present = [g for g in grads if g is not None]
    if keras.backend.backend() == "torch" and present and _torch_fits(present):
        scaled = iter(_torch_clip_by_global_norm(present, clip_norm))
        return [None if g is None else next(scaled) for g in grads]
    return reference_clip_by_global_norm(grads, clip_norm)


def reference_clip_by_global_norm(grads, clip_norm):
    """`clip_by_global_norm` in `keras.ops`: Keras' optimizer's own clip.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> clipped = reference_clip_by_global_norm([ops.convert_to_tensor(np.array([6.0, 8.0], "float32"))], 5.0)
    >>> [round(float(v), 6) for v in ops.convert_to_numpy(clipped[0])]
    [3.0, 4.0]
    """
    from keras.src.optimizers.base_optimizer import clip_by_global_norm as keras_clip

    return keras_clip(grads, clip_norm)


def _torch_fits(grads):
    import torch

    first = grads[0]
    return all(
        isinstance(g, torch.Tensor) and g.device == first.device and g.dtype == first.dtype for g in grads
    )


def _torch_clip_by_global_norm(grads, clip_norm):
    import torch

    with torch.no_grad():
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        # Keras' form: NaN for a norm that is not finite.
        scale = clip_norm * torch.minimum(1.0 / norm, torch.tensor(1.0 / clip_norm, dtype=norm.dtype)) + (norm - norm)
        return list(torch._foreach_mul(grads, scale))
