"""The training objective is the authors' (nats per image), with their L2 set and gradient clip.

The authors' code minimizes `cost + 5e-5 * l2_reg`, `cost` the mean negative log-likelihood in
nats per image, and clips the global gradient norm of that at 100 (docs/paper.md, section 2).
"""

import math

import keras
import numpy as np
import pytest
from helpers import to_numpy

from keras_realnvp import RealNVP
from keras_realnvp.bijectors import AffineCoupling, RunningBatchNorm
from keras_realnvp.data.embedded import load_embedded_patches


def _patches(count, seed=0):
    """Dequantized 32x32 photo patches: real image statistics, as a data set has them."""
    pixels = load_embedded_patches("train", 32)[:count].astype("float32")
    return pixels + np.random.default_rng(seed).uniform(size=pixels.shape).astype("float32")


def test_penalty_is_about_1e_4_of_the_likelihood_at_initialization_on_the_cifar10_architecture():
    model = RealNVP.from_preset("cifar10", load_weights=False)
    nll = -float(np.mean(to_numpy(model(_patches(2)))))  # nats per image, on the [0, 256)^D scale
    penalty = model.l2_scale * float(to_numpy(model.l2_penalty()))
    # Measured 8.9e-5 (torch, these patches). The same coefficient on a bits/dim loss made the
    # penalty D ln 2 = 2,129 times larger relative to the likelihood: 17% of the loss.
    assert 2e-5 < penalty / nll < 5e-4, (penalty, nll)


def _authors_name(variable, model):
    """The name of `variable` in the authors' code, where it has a counterpart there.

    Their s/t ResNet: `h_in` (the stem; no magnitude), `skip_in` and `skip_<i>` (magnitude),
    block `h_0` (our conv_a; no magnitude) and block `out` (our conv_b; magnitude), the
    network's `out` (our head; magnitude); each coupling's `rescaling_scale`.
    """
    parts = variable.path.split("/")
    if parts[-1] != "scale":
        return None
    layer = parts[-2]
    if layer.startswith("skip_"):
        return f"resnet/{'skip_in' if layer == 'skip_0' else layer}/magnitude"
    if layer.endswith("_conv_b"):
        return f"resnet/block_{layer.split('_')[1]}/out/magnitude"
    if layer == "head":
        return "resnet/out/magnitude"
    if layer == "stem":
        return "resnet/h_in/weights"
    if layer.endswith("_conv_a"):
        return f"resnet/block_{layer.split('_')[1]}/h_0/weights"
    couplings = {id(c.scale) for c in model._flatten_layers() if isinstance(c, AffineCoupling)}
    return "rescaling_scale" if id(variable) in couplings else None


def test_l2_covers_exactly_what_the_authors_name_filter_covers():
    model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=2)
    named = {id(v): _authors_name(v, model) for v in model.trainable_variables}
    # Their filter: `"magnitude" in v.name or "rescaling_scale" in v.name`.
    expected = {key for key, name in named.items() if name and ("magnitude" in name or "rescaling_scale" in name)}
    got = {id(v) for v in model.weight_scale_variables()}
    assert got == expected
    # 10 couplings x (3 skips + 2 conv_b + head + the coupling scale); not the stems, not conv_a.
    assert len(got) == 10 * 7
    stems = [v for v in model.trainable_variables if v.path.endswith("stem/scale")]
    assert len(stems) == 10 and not {id(v) for v in stems} & got


def test_the_gradient_clip_engages_at_the_authors_scale():
    """One SGD step: the update is `lr * g`, clipped to norm `lr * 100` when ||g|| > 100."""
    x = _patches(4)
    steps = {}
    for clip in (100.0, None):
        keras.utils.set_random_seed(3)
        model = RealNVP(image_shape=(32, 32, 3), num_scales=2, filters=4, num_blocks=1, seed=3)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-3, global_clipnorm=clip))
        before = [to_numpy(v).copy() for v in model.trainable_variables]
        model.train_on_batch(x)
        after = [to_numpy(v) for v in model.trainable_variables]
        steps[clip] = math.sqrt(sum(float(np.sum((a - b) ** 2)) for a, b in zip(after, before))) / 1e-3
    # Unclipped, the gradient norm of the nats-per-image objective is in the thousands here
    # (the authors saw 600-5,500); divided by D ln 2 (bits/dim) it would be a few units.
    assert steps[None] > 500, steps
    np.testing.assert_allclose(steps[100.0], 100.0, rtol=1e-3)


def test_a_training_step_trains_as_keras_step_and_leaves_no_gradient_on_the_weights():
    """`RealNVP.train_step` is Keras' step; on PyTorch it also frees the gradients it leaves.

    Keras' own step (run here on a twin model) would keep them on the weights until after the
    next step's forward pass, where a step's memory peaks.
    """
    x = _patches(4)
    models = []
    for release in (True, False):
        keras.utils.set_random_seed(5)
        model = RealNVP(image_shape=(32, 32, 3), num_scales=2, filters=4, num_blocks=1, seed=5)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        if not release:
            model.train_step = keras.Model.train_step.__get__(model)  # Keras' step, unchanged
        for _ in range(2):
            model.train_on_batch(x)
        models.append(model)
    for a, b in zip(models[0].weights, models[1].weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b), err_msg=a.path)
    if keras.backend.backend() == "torch":
        assert all(v.value.grad is None for v in models[0].trainable_variables)
        assert all(v.value.grad is not None for v in models[1].trainable_variables)


@pytest.mark.parametrize("bn_mode", RunningBatchNorm.MODES)
def test_bn_mode_reaches_every_coupling_output_norm_and_survives_saving(bn_mode, tmp_path):
    model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1, bn_mode=bn_mode)
    norms = [layer for layer in model._flatten_layers() if isinstance(layer, RunningBatchNorm)]
    assert len(norms) == 10 and {layer.mode for layer in norms} == {bn_mode}
    assert model.training_objective()["bn_mode"] == bn_mode
    folder = model.save_to_preset(tmp_path / "preset")
    assert RealNVP.from_preset(str(folder)).bn_mode == bn_mode


def test_unknown_bn_mode_is_a_clear_error():
    with pytest.raises(ValueError, match=r"bn_mode.*running_average.*batch.*'moving'"):
        RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1, bn_mode="moving")


def test_presets_use_the_batch_norm_the_paper_used_and_say_what_they_optimize():
    for name in RealNVP.presets:
        model = RealNVP.from_preset(name, load_weights=False, filters=4, num_blocks=1)
        # Appendix E: running averages on CIFAR-10 (and the small embedded stand-in), ordinary
        # batch normalization on every other dataset of the paper.
        expected = "running_average" if name in ("cifar10", "embedded_16") else "batch"
        assert model.bn_mode == expected, name
        objective = RealNVP.presets[name]["training"]["objective"]
        assert objective["loss"].startswith("mean negative log-likelihood in nats per image"), name
        assert objective["bn_mode"] == expected
