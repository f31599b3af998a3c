"""PyTorch's vector math library, initialized on one thread before any parallel call.

On a CPU, PyTorch (built with `USE_MKL=ON`, as the x86 wheels are) computes `log`, `exp`,
`tanh` and other transcendental functions of float32 and float64 tensors with Intel MKL's
vector math functions, one call per chunk of the tensor on each of its intra-op threads. With
torch 2.13.0 the first such call in a process, when it runs on two threads, sometimes returns
the second thread's chunk wrong (elements 3,072 to 6,143 of a 6,144-element tensor, up to
1,771 units in the last place of float32, about 1e-4 relative), and every later call right (1
ulp). With one thread (`OMP_NUM_THREADS=1` or `MKL_NUM_THREADS=1`), or after one call on one
thread, it did not happen: MKL's initialization appears to race when two threads make its
first call at once. No other cause was looked for.

Measured on the Intel Xeon with AMX (2 cores; docs/performance.md names the CPUs),
2026-12-06, torch 2.13.0: the first call in a fresh process of `torch.log`, `torch.exp` or
`torch.tanh` on 65,536 values in (0.05, 0.95), against NumPy in float64, 8 processes for each
function and dtype. Without a call before it, float32 came out wrong in 8 of 24 processes
(`log` 3 of 8, up to 1,566 ulp; `exp` 3, 1,771 ulp; `tanh` 2, 850 ulp), float64 in 1 of 24
(`log`, 54,734 ulp, about 1e-11 relative); with `torch.exp` of one element first, in none
of the 48 (at most 1 ulp in float32, 1 in float64).

For this package that first call is the logit preprocessing of the first batch a process
evaluates or trains on: its log-density, and a training run resumed from a checkpoint (whose
first step is the first call in the resumed process), could differ from what the same
weights and batch give in any other process (`tests/training/test_fault_tolerance.py`).
`initialize_vector_math` makes MKL initialize with one single-element call on the calling
thread; `import keras_realnvp` calls it on PyTorch. It changes nothing where MKL was already
initialized, and on TensorFlow and JAX (which do not use VML) it does nothing.
"""


def initialize_vector_math() -> bool:
    """On PyTorch, one call of MKL's vector math on this thread alone; whether it made one.

    Example:

    >>> import keras
    >>> initialize_vector_math() == (keras.backend.backend() == "torch")
    True
    """
    import keras

    if keras.backend.backend() != "torch":
        return False
    initialize_torch_vector_math()
    return True


def initialize_torch_vector_math():
    """`torch.exp` of one element: below every parallel grain size, so on this thread only.

    Needs only PyTorch (this module imports no backend and no Keras at import).

    Example:

    >>> import keras
    >>> if keras.backend.backend() == "torch":
    ...     initialize_torch_vector_math()
    """
    import torch

    torch.exp(torch.zeros(1))
