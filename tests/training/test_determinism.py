"""Determinism on the current backend: the same seed gives the same training run and samples."""

import keras
import numpy as np
from helpers import TINY, run_tiny, to_numpy

from keras_realnvp import RealNVP


def _on_cpu_only():
    try:
        return all(device.lower().startswith("cpu") for device in keras.distribution.list_devices())
    except Exception:  # no device listing on this backend: do not claim bitwise equality
        return False


def _assert_same(actual, expected, what):
    # CPU kernels are deterministic: bit for bit. Accelerators may reduce in another order.
    if _on_cpu_only():
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        np.testing.assert_allclose(actual, expected, atol=1e-6, rtol=1e-6, err_msg=what)


def test_the_same_seed_gives_the_same_trajectory_weights_and_samples(tiny_run, tmp_path):
    # The session's tiny run against a second one with the same seed, in this process.
    first_output, first = tiny_run
    second = run_tiny(tmp_path)
    a, b = RealNVP.from_preset(str(first_output / "preset")), RealNVP.from_preset(str(tmp_path / "preset"))
    for epoch in range(2):
        for key in ("train_bits_per_dim", "held_out_bits_per_dim", "held_out_standard_error"):
            _assert_same(second["history"][epoch][key], first["history"][epoch][key], f"{key}, epoch {epoch}")
    _assert_same(second["held_out_bits_per_dim"], first["held_out_bits_per_dim"], "final held-out bits/dim")
    for u, v in zip(a.weights, b.weights, strict=True):
        _assert_same(to_numpy(v), to_numpy(u), u.path)
    samples = [to_numpy(model.sample(4, temperature=0.7, seed=11)) for model in (a, b)]
    assert np.all(np.isfinite(samples[0]))
    _assert_same(samples[1], samples[0], "samples")
    # Not vacuous: the sample seed matters, and so does the training seed.
    assert not np.allclose(to_numpy(a.sample(4, temperature=0.7, seed=12)), samples[0])
    initial = {}
    for label, seed in (("5", 5), ("6", 6), ("5 again", 5)):  # the initialization TrainingRun builds
        keras.utils.set_random_seed(seed)
        model = RealNVP.from_preset("embedded_16", load_weights=False, seed=seed, **TINY)
        initial[label] = [to_numpy(w) for w in model.weights]
    assert all(np.array_equal(u, v) for u, v in zip(initial["5"], initial["5 again"]))
    assert not all(np.array_equal(u, v) for u, v in zip(initial["5"], initial["6"]))
