"""The global-norm clip (`keras_realnvp.backend.gradient_clip`) equals Keras' on every backend.

PyTorch runs multi-tensor kernels, the other backends Keras' own formula. Checked: the
clipped gradients equal the reference to 1e-6 relative in float32 (1e-12 in float64) with
the clip engaged and not; the clipped norm is the clip norm; `None` entries stay; a
gradient that is not finite makes every gradient NaN, as in Keras.
"""

import numpy as np
import pytest
from keras import ops

from keras_realnvp.backend.gradient_clip import clip_by_global_norm, reference_clip_by_global_norm

SHAPES = [(3, 3, 2, 4), (4,), (5, 2), ()]


def _grads(dtype, scale=1.0):
    rng = np.random.default_rng(0)
    return [ops.convert_to_tensor((scale * rng.normal(size=shape)).astype(dtype)) for shape in SHAPES]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("clip_norm", [1.0, 1e3], ids=["engaged", "idle"])
def test_the_clip_equals_keras_clip(dtype, clip_norm):
    grads = _grads(dtype, scale=3.0)  # global norm about 21
    got = [ops.convert_to_numpy(g) for g in clip_by_global_norm(grads, clip_norm)]
    expected = [ops.convert_to_numpy(g) for g in reference_clip_by_global_norm(grads, clip_norm)]
    tolerance = dict(rtol=1e-6, atol=1e-7) if dtype == "float32" else dict(rtol=1e-12, atol=1e-14)
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype == np.dtype(dtype)
        np.testing.assert_allclose(g, e, **tolerance)
    norm = np.sqrt(sum(np.sum(np.square(g.astype("float64"))) for g in got))
    original = np.sqrt(sum(np.sum(np.square(ops.convert_to_numpy(g).astype("float64"))) for g in grads))
    assert norm == pytest.approx(min(clip_norm, original), rel=1e-5)


def test_none_entries_stay_none():
    grads = _grads("float32")
    clipped = clip_by_global_norm([grads[0], None, grads[1]], 0.5)
    assert clipped[1] is None
    np.testing.assert_allclose(
        np.sqrt(sum(np.sum(np.square(ops.convert_to_numpy(g))) for g in (clipped[0], clipped[2]))), 0.5, rtol=1e-5)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_gradient_that_is_not_finite_makes_every_gradient_nan(bad):
    grads = [ops.convert_to_numpy(g) for g in _grads("float32")]
    grads[1][2] = bad
    clipped = clip_by_global_norm([ops.convert_to_tensor(g) for g in grads], 1.0)
    assert all(np.all(np.isnan(ops.convert_to_numpy(g))) for g in clipped)
    reference = reference_clip_by_global_norm([ops.convert_to_tensor(g) for g in grads], 1.0)
    assert all(np.all(np.isnan(ops.convert_to_numpy(g))) for g in reference)


def test_the_backend_is_the_one_in_use():
    clipped = clip_by_global_norm(_grads("float32"), 1.0)
    assert ops.is_tensor(clipped[0])
