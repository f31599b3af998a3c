"""`keras_realnvp.backend.vector_math`: PyTorch's vector math initialized before its first parallel call.

- After `initialize_torch_vector_math`, the first `torch.log` of a fresh process, on two
  threads, agrees with NumPy's float64 values to 2 ulp of float32. Without it one process in
  three to five returned the second thread's chunk up to 1,566 ulp off (see the module). The
  failure is a race, so one process proves little: eight processes in a row must all agree.
  With the initialization removed, at least one of the eight failed in each of 4 runs of this
  test (6 of the 32 processes; Intel Xeon with AMX, 2 cores, nothing else running). The
  processes import PyTorch and this module's file alone: Keras' import would add 5 s to each.
- `import keras_realnvp` makes the call on PyTorch (`initialize_vector_math`'s doctest checks
  it is made on PyTorch only); a resumed training run equal bit for bit to the uninterrupted
  one (`tests/training/test_fault_tolerance.py`) depends on it.
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

MODULE = Path(__file__).resolve().parents[2] / "keras_realnvp" / "backend" / "vector_math.py"

FIRST_CALL = """
import importlib.util, sys
import numpy as np
import torch

if sys.argv[1] == "initialize":
    spec = importlib.util.spec_from_file_location("vector_math", sys.argv[2])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.initialize_torch_vector_math()
x = np.random.default_rng(0).uniform(0.05, 0.95, 65536).astype("float32")
y = torch.log(torch.from_numpy(x)).numpy()
expected = np.log(x.astype("float64")).astype("float32")
print(int(np.max(np.abs(y.view("int32").astype("int64") - expected.view("int32").astype("int64")))))
"""


def first_call_ulps(initialize: bool, processes: int) -> list:
    """The float32 ulp error of the first `torch.log` of each of `processes` fresh processes, one after another."""
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    argv = [sys.executable, "-c", FIRST_CALL, "initialize" if initialize else "no", str(MODULE)]
    ulps = []
    for _ in range(processes):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        ulps.append(int(done.stdout.split()[-1]))
    return ulps


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="MKL's vector math is PyTorch's")
def test_the_first_transcendental_of_a_process_is_right_once_initialized():
    ulps = first_call_ulps(initialize=True, processes=8)
    assert max(ulps) <= 2, f"ulp error of each process's first torch.log: {ulps}"
