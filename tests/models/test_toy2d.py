"""The 2-D toy of figure 1: RealNVP2D (the image model's AffineCoupling on vectors), two moons, the figure.

Tolerances: inverse 1e-5 (float32); log-det against the autodiff Jacobian 1e-6 (float64);
a saved and reloaded model gives the same log-density to 1e-6.
"""

import keras
import numpy as np
import pytest
from helpers import check_log_det, randomize_weights, to_numpy

from keras_realnvp import RealNVP2D
from keras_realnvp.bijectors import AffineCoupling
from keras_realnvp.experiments import toy_figure
from keras_realnvp.models.toy2d import TOY_2D_CONFIG, two_moons


@pytest.fixture
def single_thread_torch():
    # Tiny matrices: on a busy 2-core machine torch's thread pool makes each step about
    # 10x slower than one thread. Restored afterwards.
    if keras.backend.backend() != "torch":
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def training_data():
    return two_moons(4096, noise=0.05, seed=0)


@pytest.fixture
def trained(training_data, single_thread_torch):
    keras.utils.set_random_seed(0)
    model = RealNVP2D(**TOY_2D_CONFIG, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(training_data, batch_size=256, epochs=15, verbose=0)  # 240 steps
    return model, history


def _off_support_points(data, count, seed):
    """Points of the data's bounding box farther than 0.5 from every data point."""
    rng = np.random.default_rng(seed)
    low, high = data.min(0), data.max(0)
    candidates = rng.uniform(low, high, (20 * count, 2)).astype("float32")
    distance = np.min(np.linalg.norm(candidates[:, None, :] - data[None, ::4, :], axis=-1), axis=1)
    points = candidates[distance > 0.5][:count]
    assert len(points) == count
    return points


def test_trained_toy_model_puts_density_on_the_data_not_off_it(trained, training_data):
    model, history = trained
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0] - 0.5, losses
    held_out = two_moons(500, noise=0.05, seed=1)
    off = _off_support_points(training_data, 500, seed=2)
    log_p_data = to_numpy(model.log_prob(held_out))
    log_p_off = to_numpy(model.log_prob(off))
    # A standard normal fit to the data would give about -2.84 nats per point; the flow does
    # much better on the moons (measured about -1.6 after 240 steps) and much worse off them.
    assert log_p_data.mean() > -2.3, log_p_data.mean()
    assert log_p_data.mean() > log_p_off.mean() + 5.0, (log_p_data.mean(), log_p_off.mean())
    assert np.median(log_p_data) > np.percentile(log_p_off, 90), (np.median(log_p_data), np.percentile(log_p_off, 90))
    # Samples land on the moons: most are near some data point.
    samples = to_numpy(model.sample(500, seed=3))
    distance = np.min(np.linalg.norm(samples[:, None, :] - training_data[None, ::4, :], axis=-1), axis=1)
    assert np.mean(distance < 0.3) > 0.8, np.mean(distance < 0.3)
    # The figure of the trained model: four panels, each with coloured points on white.
    figure = toy_figure(model, held_out, seed=0, panel_size=128)
    assert figure.shape == (2 * (128 + 14) + 12, 2 * 128 + 12, 3) and figure.dtype == np.uint8
    for top in (4, 4 + 142 + 4):
        for left in (4, 4 + 128 + 4):
            panel = figure[top + 14 : top + 142, left : left + 128].astype(int)
            coloured = np.ptp(panel, axis=-1) > 60  # points are saturated; grid lines and text are grey
            assert coloured.sum() > 200, (top, left, coloured.sum())
    # Each title strip holds its title and nothing else: the trained map sends grid lines and points
    # far out of the Z and X boxes, yet the strips are those of an untrained model's figure, whose
    # lines and points stay inside. Identical strips also mean nothing of the plot covers the title.
    untrained = toy_figure(RealNVP2D(**TOY_2D_CONFIG, seed=0), held_out, seed=0, panel_size=128)
    for top in (4, 4 + 142 + 4):
        for left in (4, 4 + 128 + 4):
            strip = figure[top : top + 14, left : left + 128]
            np.testing.assert_array_equal(strip, untrained[top : top + 14, left : left + 128])
            assert strip.min() < 80 and np.ptp(strip.astype(int), axis=-1).max() == 0  # black text on white only


def test_toy_model_is_the_coupling_layer_and_exactly_invertible(rng):
    model = RealNVP2D(dim=2, num_couplings=4, filters=8, num_blocks=1, dtype="float64")
    assert all(isinstance(c, AffineCoupling) for c in model.couplings)
    assert [c.reverse for c in model.couplings] == [False, True, False, True]
    randomize_weights(model, seed=1, noise=0.3)
    x = rng.normal(size=(3, 2))
    z = to_numpy(model.encode(x))
    np.testing.assert_allclose(to_numpy(model.decode(z)), x, atol=1e-9, rtol=0)
    log_det = to_numpy(model.log_prob(x)) - to_numpy(model.prior_log_prob(z))
    assert np.abs(log_det).min() > 1e-3  # a real volume change
    check_log_det(model.forward_flow, x, atol=1e-6)  # the bijectors' check (tests/helpers.py)
    np.testing.assert_allclose(log_det, to_numpy(model.forward_flow(x)[1]), atol=1e-6, rtol=0)  # compiled vs eager


def test_vector_coupling_takes_labels(rng):
    layer = AffineCoupling("channel", reverse=True, filters=8, num_blocks=1, label_dim=3)
    layer.build((4, 2))
    randomize_weights(layer, seed=3, noise=0.3)
    x = rng.normal(size=(4, 2)).astype("float32")
    labels = np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    y, log_det = layer(x, labels=labels)
    np.testing.assert_allclose(to_numpy(layer.inverse(y, labels=labels)), x, atol=1e-5, rtol=0)
    y_other, log_det_other = layer(x, labels=labels[::-1])
    assert np.abs(to_numpy(y_other) - to_numpy(y)).max() > 1e-3
    assert np.abs(to_numpy(log_det_other) - to_numpy(log_det)).max() > 1e-4
    with pytest.raises(ValueError, match="conditional"):
        layer(x)


def test_toy_model_sampling_saving_and_input_checks(tmp_path):
    model = RealNVP2D(dim=4, num_couplings=3, filters=8, num_blocks=1, mask_type="channel", seed=0)
    randomize_weights(model, seed=2)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    assert np.abs(to_numpy(model.decode(model.encode(x))) - x).max() < 1e-5
    zero = to_numpy(model.decode(np.zeros((2, 4), "float32")))
    np.testing.assert_array_equal(to_numpy(model.sample(2, temperature=0.0)), zero)
    np.testing.assert_array_equal(to_numpy(model.sample(3, seed=4)), to_numpy(model.sample(3, seed=4)))
    path = tmp_path / "toy.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, RealNVP2D) and loaded.mask_type == "channel"
    np.testing.assert_allclose(to_numpy(loaded.log_prob(x)), to_numpy(model.log_prob(x)), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"shape \(batch, 4\)"):
        model.log_prob(x[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        model.encode(np.full((1, 4), np.nan))
    with pytest.raises(ValueError, match="temperature"):
        model.sample(2, temperature=-1.0)
    with pytest.raises(ValueError, match="num_couplings"):
        RealNVP2D(num_couplings=1)
    with pytest.raises(ValueError, match="even"):
        RealNVP2D(dim=3, mask_type="channel")


def test_two_moons():
    points = two_moons(1001, noise=0.0, seed=0)
    np.testing.assert_array_equal(points, two_moons(1001, noise=0.0, seed=0))
    raw = points * [0.87, 0.5] + [0.5, 0.25]  # undo the centring and scaling
    upper = np.abs(np.hypot(raw[:, 0], raw[:, 1]) - 1.0) < 1e-6
    lower = np.abs(np.hypot(raw[:, 0] - 1.0, raw[:, 1] - 0.5) - 1.0) < 1e-6
    assert upper.sum() == 501 and lower.sum() == 500 and np.all(upper | lower)
    assert np.all(raw[upper, 1] >= -1e-6) and np.all(raw[lower, 1] <= 0.5 + 1e-6)
    with pytest.raises(ValueError, match="num_points"):
        two_moons(0)
    with pytest.raises(ValueError, match="noise"):
        two_moons(10, noise=-1.0)
