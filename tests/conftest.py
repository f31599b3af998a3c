"""Test set-up shared by every backend: float64 on JAX, a compilation cache, fixed seeds.

JAX compiles every new model and training step (tens of seconds on a small CPU), and many
tests build the same tiny ones, in this process and in the tools they run as subprocesses.
The persistent compilation cache (set through the environment, so that subprocesses share it)
lets each distinct program compile once per run; `.cache/jax` is outside version control. XLA
compiles the tests' programs without its LLVM optimizations (`--xla_backend_optimization_level=0`):
the programs are the same and the first compile of each is faster; float32 results may round
differently (1.4e-8 relative seen between a jitted and an eager toy log-density).

`pytest -n N` runs N workers on the machine's cores: each backend (and each tool a test runs as
a subprocess, through the environment) gets its share of the cores as its thread pool. Without
that, every worker's pool spins on every core, and a small training step on a busy 2-core
machine is several times slower than with one thread (measured: torch 1.05 s against 0.29 s).
"""

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


_SET_BY_CONFTEST = "KERAS_REALNVP_TEST_THREAD_VARIABLES"


def _share_the_cores():
    """Thread pools of `cores // workers` threads, unless the user set the variables.

    The xdist controller process imports this file too, before it starts the workers, and
    they inherit its environment: there it sees no worker count and sets the whole machine's
    cores. The names set here are recorded, so that a worker overrides those values (and
    only those) with its share.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    ours = set(filter(None, os.environ.get(_SET_BY_CONFTEST, "").split(",")))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        if name not in os.environ or name in ours:
            os.environ[name] = threads
            ours.add(name)
    os.environ[_SET_BY_CONFTEST] = ",".join(sorted(ours))
    if threads == "1":  # XLA's CPU client: no Eigen thread pool of its own
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()


_share_the_cores()

if os.environ.get("KERAS_BACKEND", "tensorflow") == "jax":
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".cache" / "jax"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")  # not the eager ops
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    # A size limit turns on the cache's file lock: two pytest workers and their subprocesses
    # read and write it at once.
    os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(2 * 1024**3))
    # XLA's LLVM optimizations take most of the compile time of the tests' tiny programs and
    # buy little speed on them: without them the tiny training run took 25.9 s instead of 36.0
    # (first compiles, AMD EPYC, 2 cores). Set through the environment, for the subprocesses too.
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=0".strip()
    # The brute-force Jacobian tests run tiny models in float64; JAX needs x64 for that.
    os.environ.setdefault("JAX_ENABLE_X64", "True")
    import jax

    jax.config.update("jax_enable_x64", True)

import keras  # noqa: E402


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """`(output folder, results)` of one uninterrupted `run_tiny`, shared by the whole session."""
    from helpers import run_tiny

    output = tmp_path_factory.mktemp("tiny-run")
    return output, run_tiny(output)


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
