"""The machine a benchmark runs on: its CPU, load and matrix-multiply speed, and resident memory.

Example:

>>> sorted(machine_description())
['cores', 'cpu', 'cpu_flags', 'omp_wait_policy', 'python']
"""

import os
import platform
import time
from pathlib import Path

# The CPU features that decide whether bfloat16 can pay off on a CPU.
BFLOAT16_FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def machine_description() -> dict:
    """The CPU's name, its bfloat16-relevant flags, the cores, Python's version and `OMP_WAIT_POLICY`.

    Example:

    >>> machine_description()["cores"] == os.cpu_count()
    True
    """
    text = _cpuinfo()
    cpu = platform.processor() or platform.machine()
    for line in text.splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    present = set(text.split("flags", 1)[1].split("\n", 1)[0].split()) if "flags" in text else set()
    return {
        "cpu": cpu, "cpu_flags": ",".join(f for f in BFLOAT16_FLAGS if f in present), "cores": os.cpu_count(),
        "python": platform.python_version(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }


def matmul_throughput(size: int = 1024, repeats: int = 10) -> dict:
    """GFLOP/s of a `size`-square matrix multiply in float32 and in bfloat16 on the current backend's device.

    Mixed precision can only speed training up where the hardware multiplies bfloat16 faster
    than float32 (AVX512-BF16 or AMX on x86 CPUs, tensor cores on GPUs); without it PyTorch,
    XLA and TensorFlow emulate bfloat16 and run slower. This says which case a machine is.

    Example:

    >>> result = matmul_throughput(size=64, repeats=2)
    >>> result["float32"] > 0 and result["bfloat16"] > 0
    True
    """
    import keras

    from keras_realnvp.backend.devices import device_description, synchronize

    result = {"size": size, **device_description(), **machine_description()}
    for dtype in ("float32", "bfloat16"):
        a = keras.ops.cast(keras.random.normal((size, size), seed=1), dtype)
        b = keras.ops.cast(keras.random.normal((size, size), seed=2), dtype)
        synchronize(keras.ops.matmul(a, b))  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            product = keras.ops.matmul(a, b)
        keras.ops.convert_to_numpy(keras.ops.cast(synchronize(product)[0, 0], "float32"))  # TensorFlow waits here
        result[dtype] = 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9
    result["bfloat16_over_float32"] = result["bfloat16"] / result["float32"]
    return result


def load_average() -> float:
    """The 1-minute load average (NaN where the system has none).

    Example:

    >>> import math
    >>> load_average() >= 0 or math.isnan(load_average())
    True
    """
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


class ResidentMemory:
    """Peak resident memory of this process during a `with` block, from /proc (Linux).

    `before` is the resident memory on entry, `peak` the highest during the block (bytes).

    Example:

    >>> with ResidentMemory() as rss:
    ...     block = bytearray(8 * 2**20)
    >>> rss.peak >= rss.before > 0
    True
    """

    @staticmethod
    def _status(key):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024
        raise OSError(key)

    def __enter__(self):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
        self.before = self._status("VmRSS")
        return self

    def __exit__(self, *exc):
        self.peak = self._status("VmHWM")
