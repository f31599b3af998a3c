"""Test set-up shared by every backend: float64 support on JAX, fixed seeds."""

import os

import numpy as np
import pytest

if os.environ.get("KERAS_BACKEND", "tensorflow") == "jax":
    # The brute-force Jacobian tests run tiny models in float64; JAX needs x64 for that.
    import jax

    jax.config.update("jax_enable_x64", True)

import keras  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    # free_memory=False: on torch a gc.collect() per test costs more than the test.
    keras.backend.clear_session(free_memory=False)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
