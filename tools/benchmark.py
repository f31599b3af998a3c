"""Measure training, sampling and evaluation speed and peak memory of a Real NVP preset.

One implementation per run, on the current Keras backend (KERAS_BACKEND) or the plain-PyTorch
baseline of tools/benchmarks/torch_realnvp.py (the same architecture written by hand, checked
at start-up to have the same parameter count and the same log-density as the Keras model):

    KERAS_BACKEND=jax python tools/benchmark.py                      # cifar10, batch 16
    KERAS_BACKEND=torch python tools/benchmark.py --json             # one JSON record
    python tools/benchmark.py --implementation torch-baseline
    KERAS_BACKEND=tensorflow python tools/benchmark.py --dtype-policy mixed_bfloat16

Training throughput is images/s over timed `train_on_batch` steps after warm-up (the first
step's extra time, tracing and compilation, is reported as compile time), with uint8 batches
dequantized inside the model as in `fit`. Sampling is `model.sample(batch)`, evaluation
`model.bits_per_dim(batch)`. GFLOP/s come from `keras_realnvp.flops.forward_flops` (a training
step counts 3x the forward FLOPs). Peak memory is that of one training step after warm-up: on
a GPU the framework allocator's peak, on a CPU the process's peak resident memory during the
step minus its resident memory just before it (activations, gradients and temporaries; the
weights and optimizer state are already resident), plus the absolute peak.

--compare runs the baseline and the three backends in one process tree: one worker process
per implementation (the parent starts and warms them up one after the other), then
--rounds rounds in which each worker in turn times --steps training steps and
--eval-batches evaluation and sampling batches while the others wait. Figures are medians
over rounds, ratios are taken within each round against the baseline (then their median), so
load from other processes on the machine affects both sides of a ratio alike.

    python tools/benchmark.py --compare                    # the README table (markdown)
    python tools/benchmark.py --compare --memory           # plus peak memory at batch 64, every preset
    python tools/benchmark.py --compare --memory-only      # only the peak memory at batch 64, every preset
    python tools/benchmark.py --compare --dtype-policy mixed_bfloat16
    python tools/benchmark.py --compare --dtype-policy float32,mixed_bfloat16   # mixed vs float32
    python tools/benchmark.py --matmul       # can bfloat16 pay off here? float32 vs bfloat16 matmul

With several --dtype-policy values, --compare runs a worker per implementation and policy, all
taking turns in the same rounds, and adds the ratio of each policy's throughput to the same
implementation's float32 throughput within each round (the mixed-precision speed-up).

Device placement is left to each framework (a GPU if it sees one), so this runs unchanged on
a GPU machine.
"""

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

# PyTorch's OpenMP threads spin while waiting for work; when other processes share the cores
# (this project's 2-core machine), a spinning thread loses its time slice and every parallel
# operation then waits for the scheduler (measured: 8 ms for a 100k-element multiply, 20 us
# with passive waiting). Applies to the baseline and the PyTorch backend alike; set the
# variable yourself to override. It must be set before PyTorch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_ROOT = Path(__file__).resolve().parents[1]
if (_ROOT / "keras_realnvp").is_dir() and str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))
_BENCHMARKS = Path(__file__).resolve().parent / "benchmarks"

# The paper's architectures (docs/paper.md §5). Kept here until the preset registry
# (keras_realnvp.presets) exists everywhere; when it is importable, its config.json files are
# used instead and must agree (see `architecture`).
_IMAGE_64 = {"image_shape": (64, 64, 3), "num_scales": 5, "filters": 32, "num_blocks": 2}
ARCHITECTURES = {
    "cifar10": {"image_shape": (32, 32, 3), "num_scales": 2, "filters": 64, "num_blocks": 8},
    "imagenet_32": {"image_shape": (32, 32, 3), "num_scales": 4, "filters": 32, "num_blocks": 4},
    "imagenet_64": _IMAGE_64,
    "lsun_bedroom": _IMAGE_64,
    "lsun_tower": _IMAGE_64,
    "lsun_church_outdoor": _IMAGE_64,
    "celeba_64": _IMAGE_64,
}
# Not a paper preset: a seconds-long run to check that the tool works (`--preset smoke`).
SMOKE = {"smoke": {"image_shape": (16, 16, 3), "num_scales": 2, "filters": 8, "num_blocks": 1}}
IMPLEMENTATIONS = ("torch-baseline", "keras")
DTYPE_POLICIES = ("float32", "mixed_bfloat16")
COMPARE_ORDER = ("torch-baseline", "torch", "tensorflow", "jax")
MEMORY_BATCH_SIZE = 64


def architecture(preset):
    """The constructor arguments that define `preset`'s network."""
    if preset in SMOKE:
        return dict(SMOKE[preset])
    arch = dict(ARCHITECTURES[preset])
    try:
        from keras_realnvp.presets import builtin_preset_path
    except ImportError:
        return arch
    try:
        config = json.loads((builtin_preset_path(preset) / "config.json").read_text())["config"]
    except (ValueError, OSError, KeyError):
        return arch
    registered = {key: config[key] for key in arch}
    registered["image_shape"] = tuple(registered["image_shape"])
    if registered != arch:
        raise SystemExit(f"error: preset {preset!r} differs from the benchmark's table: {registered} vs {arch}")
    return registered


# ------------------------------------------------------------------ machine


def machine_description():
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        present = set(text.split("flags", 1)[1].split("\n", 1)[0].split())
        flags = ",".join(f for f in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in present)
    except (OSError, IndexError):
        pass
    return {
        "cpu": cpu, "cpu_flags": flags, "cores": os.cpu_count(), "python": platform.python_version(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }


def matmul_throughput(size=1024, repeats=10):
    """GFLOP/s of a `size`-square PyTorch matrix multiply in float32 and in bfloat16, here.

    Mixed precision can only speed training up where the hardware multiplies bfloat16 faster
    than float32 (AVX512-BF16 or AMX on x86 CPUs, tensor cores on GPUs); without it PyTorch,
    XLA and TensorFlow emulate bfloat16 and run slower. This says which case a machine is.
    """
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    result = {"device": device, "size": size, **machine_description()}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)
        a @ b  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        result[str(dtype).replace("torch.", "")] = 2 * size**3 * repeats / seconds / 1e9
    result["bfloat16_over_float32"] = result["bfloat16"] / result["float32"]
    return result


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


class ResidentMemory:
    """Peak resident memory of this process during a block, from /proc (Linux)."""

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


# ------------------------------------------------------------------ subjects


def _pixels(image_shape, count, seed):
    """uint8 photo patches (the embedded data) or, without scikit-learn, uniform noise."""
    import numpy as np

    try:
        from keras_realnvp.data import load_embedded_patches

        patches = load_embedded_patches("train", patch_size=image_shape[0])
        rng = np.random.default_rng(seed)
        return patches[rng.choice(len(patches), count, replace=len(patches) < count)]
    except Exception:  # noqa: BLE001 - only the data source changes
        return np.random.default_rng(seed).integers(0, 256, (count, *image_shape), dtype=np.uint8)


class KerasSubject:
    """`keras_realnvp.RealNVP` on the current backend, through its public methods."""

    def __init__(self, arch, batch_size, dtype_policy, jit_compile, seed=0):
        import keras
        import numpy as np

        from keras_realnvp import RealNVP
        from keras_realnvp.data.embedded import dequantize_numpy

        keras.utils.set_random_seed(seed)
        keras.config.set_dtype_policy(dtype_policy)
        self.keras = keras
        self.model = RealNVP(**arch, seed=seed)
        compile_kwargs = {} if jit_compile == "auto" else {"jit_compile": jit_compile == "true"}
        if jit_compile == "eager":  # no tf.function / jax.jit anywhere, also in log_prob and sample
            compile_kwargs = {"run_eagerly": True}
        self.model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=100.0), **compile_kwargs)
        self.batch_size = batch_size
        self.pixels = _pixels(arch["image_shape"], batch_size, seed)
        self.images = dequantize_numpy(self.pixels, seed).astype(np.float32)
        self.jit_compile = jit_compile

    def describe(self):
        keras = self.keras
        info = {"implementation": "keras", "backend": keras.backend.backend(), "keras": keras.__version__}
        backend = keras.backend.backend()
        if backend == "jax":
            import jax

            info.update(framework=f"jax {jax.__version__}", device=str(jax.devices()[0].platform))
            info["xla_flags"] = os.environ.get("XLA_FLAGS", "")
        elif backend == "torch":
            import torch

            info.update(framework=f"torch {torch.__version__}", device="cuda" if torch.cuda.is_available() else "cpu")
        else:
            import tensorflow as tf

            device = "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
            info.update(framework=f"tensorflow {tf.__version__}", device=device)
        info["jit_compile"] = "eager" if self.model.run_eagerly else self.model.jit_compile
        info["parameters"] = int(self.model.count_params())
        info["trainable_parameters"] = int(sum(math.prod(v.shape) for v in self.model.trainable_weights))
        return info

    def forward_flops(self):
        from keras_realnvp.flops import forward_flops

        return forward_flops(self.model)

    def train_step(self):
        return float(self.model.train_on_batch(self.pixels, return_dict=True)["loss"])

    def eval_step(self):
        return self.keras.ops.convert_to_numpy(self.model.bits_per_dim(self.images))

    def sample_step(self):
        return self.keras.ops.convert_to_numpy(self.model.sample(self.batch_size))

    def step_memory(self):
        """Memory one training step needs beyond what is resident before it, in bytes.

        Each framework's own accounting where a CPU process's resident memory would
        mislead: XLA keeps its buffers between steps (so for JAX on a CPU this is the
        compiled step's temporary buffers, from XLA's buffer assignment) and TensorFlow's
        oneDNN allocator keeps a pool (its allocator statistics). Returns `(bytes, where)`,
        or None to measure resident memory instead (PyTorch on a CPU).
        """
        backend = self.keras.backend.backend()
        if backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform == "cpu":
                model = self.model
                state = (
                    [v.value for v in model.trainable_variables],
                    [v.value for v in model.non_trainable_variables],
                    [v.value for v in model.optimizer.variables],
                    [v.value for v in model.metrics_variables],
                )
                data = (jax.numpy.asarray(self.pixels), None, None)
                analysis = jax.jit(model.train_step).lower(state, data).compile().memory_analysis()
                return analysis.temp_size_in_bytes, "XLA buffer assignment: temporary buffers of the step"
            stats = device.memory_stats() or {}
            before = stats.get("bytes_in_use", 0)
            self.train_step()
            peak = (device.memory_stats() or {}).get("peak_bytes_in_use", 0) - before
            return peak, "device allocator: peak minus in use before the step"
        if backend == "torch":
            import torch

            return _torch_cuda_step_memory(torch, self.train_step)
        import tensorflow as tf

        device = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
        tf.config.experimental.reset_memory_stats(device)
        before = tf.config.experimental.get_memory_info(device)["current"]
        self.train_step()
        peak = tf.config.experimental.get_memory_info(device)["peak"] - before
        return peak, f"TensorFlow allocator ({device}): peak minus in use before the step"


class BaselineSubject:
    """The plain-PyTorch Real NVP of tools/benchmarks/torch_realnvp.py."""

    def __init__(self, arch, batch_size, dtype_policy, jit_compile, seed=0):
        sys.path.insert(0, str(_BENCHMARKS))
        import torch
        from torch_realnvp import Runner

        from keras_realnvp.data.embedded import dequantize_numpy

        self.torch = torch
        self.runner = Runner(
            arch["image_shape"], arch["num_scales"], arch["filters"], arch["num_blocks"],
            amp_bfloat16=dtype_policy == "mixed_bfloat16", seed=seed,
        )
        self.arch = arch
        self.batch_size = batch_size
        self.pixels = _pixels(arch["image_shape"], batch_size, seed)
        self.images = dequantize_numpy(self.pixels, seed)
        self.reference, self.flops = self._check_against_keras(arch)

    def _check_against_keras(self, arch):
        """Same architecture as keras_realnvp: same parameter count and same log-density."""
        import numpy as np

        sys.path.insert(0, str(_BENCHMARKS))
        from torch_realnvp import Runner, load_keras_weights

        from keras_realnvp import RealNVP
        from keras_realnvp.flops import forward_flops

        keras_model = RealNVP(**arch, seed=1)
        keras_trainable = int(sum(math.prod(v.shape) for v in keras_model.trainable_weights))
        assert self.runner.parameter_count() == keras_trainable, (self.runner.parameter_count(), keras_trainable)
        assert self.runner.state_count() == keras_model.count_params(), (
            self.runner.state_count(), keras_model.count_params())
        # Equal log-density after copying the (initial) weights, on a small batch.
        check = Runner(arch["image_shape"], arch["num_scales"], arch["filters"], arch["num_blocks"], seed=1)
        load_keras_weights(check.model, keras_model)
        x = self.images[:2].astype(np.float32)
        import keras

        expected = keras.ops.convert_to_numpy(keras_model.bits_per_dim(x))
        got = check.bits_per_dim(x)
        error = float(np.abs(expected - got).max())
        assert error < 1e-3, f"the baseline's bits/dim differ from keras_realnvp's by {error}"
        # Same layers as the Keras model, so the same FLOP count.
        return {"same_parameter_count": True, "bits_per_dim_difference": error}, forward_flops(keras_model)

    def describe(self):
        torch = self.torch
        return {
            "implementation": "torch-baseline",
            "backend": "plain PyTorch",
            "framework": f"torch {torch.__version__}",
            "device": self.runner.device.type,
            "memory_format": "channels_last" if self.runner.memory_format == torch.channels_last else "contiguous",
            "parameters": self.runner.state_count(),
            "trainable_parameters": self.runner.parameter_count(),
            "checked_against_keras": self.reference,
        }

    def forward_flops(self):
        return self.flops

    def train_step(self):
        return self.runner.train_step(self.pixels)

    def eval_step(self):
        return self.runner.bits_per_dim(self.images)

    def sample_step(self):
        h, w, _ = self.arch["image_shape"]
        return self.runner.sample(self.batch_size, h, w)

    def step_memory(self):
        return _torch_cuda_step_memory(self.torch, self.train_step)


def _torch_cuda_step_memory(torch, step):
    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before, "CUDA allocator: peak minus in use before the step"


def make_subject(implementation, arch, batch_size, dtype_policy, jit_compile):
    cls = BaselineSubject if implementation == "torch-baseline" else KerasSubject
    return cls(arch, batch_size, dtype_policy, jit_compile)


# ------------------------------------------------------------------ measuring


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Measurer:
    """Warm-up, then rounds of timed steps; keeps every per-step time."""

    KINDS = ("train", "eval", "sample")

    def __init__(self, subject, args):
        self.subject = subject
        self.args = args
        self.flops = subject.forward_flops()
        self.warmup = {}

    def warm_up(self, kinds):
        for kind in kinds:
            step = getattr(self.subject, f"{kind}_step")
            first = _timed(step)
            later = [_timed(step) for _ in range(max(self.args.warmup - 1, 0))]
            self.warmup[kind] = {"first_call_s": first, "later_s": later}

    def round(self, kinds):
        result = {"load_average": load_average()}
        for kind in kinds:
            step = getattr(self.subject, f"{kind}_step")
            count = self.args.steps if kind == "train" else self.args.eval_batches
            result[kind] = [_timed(step) for _ in range(count)]
        return result

    def memory(self):
        subject = self.subject
        subject.train_step()  # warm-up (compilation) outside the measurement
        measured = subject.step_memory()
        if measured is not None:
            return {"where": measured[1], "step_peak_mb": measured[0] / 2**20}
        # PyTorch on a CPU allocates with malloc; with MALLOC_MMAP_THRESHOLD_ set (main()
        # sees to it) every large block is returned to the system when freed, so resident
        # memory follows the live tensors.
        with ResidentMemory() as rss:
            subject.train_step()
        return {
            "where": "peak resident memory during the step minus resident memory before it",
            "step_peak_mb": (rss.peak - rss.before) / 2**20,
            "absolute_peak_mb": rss.peak / 2**20,
            "before_step_mb": rss.before / 2**20,
        }


def summarize(kind, times_per_round, flops_per_image, batch_size):
    """Median step time over all steps of all rounds, and the spread of round medians."""
    per_round = [statistics.median(t) for t in times_per_round]
    step = statistics.median([t for ts in times_per_round for t in ts])
    factor = 3 if kind == "train" else 1
    return {
        "step_s": step,
        "images_per_s": batch_size / step,
        "gflop_per_s": factor * flops_per_image * batch_size / step / 1e9,
        "round_images_per_s": [batch_size / t for t in per_round],
    }


# ------------------------------------------------------------------ one process


def run_single(args):
    arch = architecture(args.preset)
    subject = make_subject(args.implementation, arch, args.batch_size, args.dtype_policy, args.jit_compile)
    measurer = Measurer(subject, args)
    record = {
        "preset": args.preset,
        "architecture": {**arch, "image_shape": list(arch["image_shape"])},
        "batch_size": args.batch_size,
        "dtype_policy": args.dtype_policy,
        **subject.describe(),
        "forward_gflop_per_image": measurer.flops / 1e9,
        "machine": machine_description(),
    }
    if args.memory_only:
        record["memory"] = measurer.memory()
        return record
    if args.quality_steps:
        record["quality"] = training_quality(arch, args)
        return record
    kinds = [k for k in Measurer.KINDS if k in args.measure]
    measurer.warm_up(kinds)
    rounds = [measurer.round(kinds) for _ in range(args.rounds)]
    for kind in kinds:
        times = [r[kind] for r in rounds]
        summary = summarize(kind, times, measurer.flops, args.batch_size)
        warm = measurer.warmup[kind]
        summary["compile_s"] = max(warm["first_call_s"] - summary["step_s"], 0.0)
        record[kind] = summary
    record["load_average"] = [r["load_average"] for r in rounds]
    return record


def training_quality(arch, args):
    """Held-out bits/dim after `--quality-steps` training steps from a fixed start.

    The same initial weights, batches and test images for every dtype policy, so running
    this once with float32 and once with mixed_bfloat16 compares their training.
    """
    import keras
    import numpy as np

    from keras_realnvp import RealNVP
    from keras_realnvp.data import load_embedded_patches
    from keras_realnvp.data.embedded import dequantize_numpy

    if args.implementation != "keras":
        raise SystemExit("error: --quality-steps measures the Keras model")
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy(args.dtype_policy)
    model = RealNVP(**arch, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=100.0))
    size = arch["image_shape"][0]
    train = load_embedded_patches("train", patch_size=size)
    test = dequantize_numpy(load_embedded_patches("test", patch_size=size)[:64], 0)

    def held_out():
        return float(np.mean(keras.ops.convert_to_numpy(model.bits_per_dim(test))))

    before = held_out()
    rng = np.random.default_rng(0)
    losses = []
    start = time.perf_counter()
    for _ in range(args.quality_steps):
        batch = train[rng.choice(len(train), args.batch_size, replace=False)]
        losses.append(float(model.train_on_batch(batch, return_dict=True)["bits_per_dim"]))
    seconds = time.perf_counter() - start
    return {
        "steps": args.quality_steps,
        "held_out_bits_per_dim_before": before,
        "held_out_bits_per_dim_after": held_out(),
        "train_bits_per_dim_last_10": float(np.mean(losses[-10:])),
        "test_images": len(test),
        "seconds": seconds,
    }


def serve(args):
    """Worker of --compare: warm up, then answer `round` lines on stdin with JSON lines."""
    sys.stdout = sys.stderr  # stdout carries the replies only
    arch = architecture(args.preset)
    subject = make_subject(args.implementation, arch, args.batch_size, args.dtype_policy, args.jit_compile)
    measurer = Measurer(subject, args)
    kinds = [k for k in Measurer.KINDS if k in args.measure]
    measurer.warm_up(kinds)
    _reply({"ready": True, **subject.describe(), "forward_flops": measurer.flops, "warmup": measurer.warmup})
    for line in sys.stdin:
        command = line.strip()
        if command == "round":
            _reply(measurer.round(kinds))
        elif command == "quit":
            break


_REPLY = "@@benchmark "


def _reply(obj):
    sys.__stdout__.write(_REPLY + json.dumps(obj) + "\n")
    sys.__stdout__.flush()


# ------------------------------------------------------------------ --compare


def _worker_command(args, implementation, extra=(), dtype_policy=None):
    """The command line and environment of a worker (`dtype_policy` default: `args.dtype_policy`)."""
    command = [
        sys.executable, str(Path(__file__).resolve()),
        "--implementation", "torch-baseline" if implementation == "torch-baseline" else "keras",
        "--preset", args.preset, "--batch-size", str(args.batch_size), "--steps", str(args.steps),
        "--eval-batches", str(args.eval_batches), "--warmup", str(args.warmup),
        "--dtype-policy", dtype_policy or args.dtype_policy, "--jit-compile", args.jit_compile,
        "--measure", ",".join(args.measure), *extra,
    ]
    env = dict(os.environ)
    if implementation != "torch-baseline":
        env["KERAS_BACKEND"] = implementation
    else:
        env.setdefault("KERAS_BACKEND", "torch")  # the baseline's start-up check builds the Keras model too
    return command, env


class Worker:
    def __init__(self, args, implementation, log, dtype_policy, name):
        command, env = _worker_command(args, implementation, ["--serve"], dtype_policy)
        self.name = name
        self.process = subprocess.Popen(
            command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
        )
        self.info = self._read()

    def _read(self):
        while True:  # frameworks may print to stdout too: replies carry a prefix
            line = self.process.stdout.readline()
            if not line:
                raise SystemExit(f"error: the {self.name} worker exited (code {self.process.wait()}); see its log")
            if line.startswith(_REPLY):
                return json.loads(line[len(_REPLY):])

    def round(self):
        self.process.stdin.write("round\n")
        self.process.stdin.flush()
        return self._read()

    def close(self):
        try:
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass
        self.process.wait()


def _worker_key(name, policy, policies):
    return name if len(policies) == 1 else f"{name} {policy}"


def compare(args):
    names = [name for name in COMPARE_ORDER if name == "torch-baseline" or name in args.backends]
    policies = args.dtype_policies
    keys = [(name, policy, _worker_key(name, policy, policies)) for name in names for policy in policies]
    log_path = Path(args.log)
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    kinds = [k for k in Measurer.KINDS if k in args.measure]
    started = time.time()
    workers = {}
    try:
        for name, policy, key in keys:
            print(f"starting {key} ...", file=sys.stderr, flush=True)
            workers[key] = Worker(args, name, log, policy, key)
        rounds = {key: [] for _, _, key in keys}
        for r in range(args.rounds):
            for _, _, key in keys:
                rounds[key].append(workers[key].round())
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    finally:
        for worker in workers.values():
            worker.close()
        log.close()
    result = {
        "preset": args.preset, "batch_size": args.batch_size, "dtype_policy": ",".join(policies),
        "architecture": {**architecture(args.preset), "image_shape": list(architecture(args.preset)["image_shape"])},
        "machine": machine_description(), "rounds": args.rounds, "steps_per_round": args.steps,
        "eval_batches_per_round": args.eval_batches, "wall_s": time.time() - started,
        "load_average": [rd["load_average"] for key in rounds for rd in rounds[key]], "implementations": {},
    }
    flops = workers[keys[0][2]].info["forward_flops"]

    def round_medians(key, kind):
        return [statistics.median(rd[kind]) for rd in rounds[key]]

    for name, policy, key in keys:
        info = {k: v for k, v in workers[key].info.items() if k not in ("ready", "warmup")}
        entry = {"info": info, "implementation": name, "dtype_policy": policy}
        for kind in kinds:
            times = [rd[kind] for rd in rounds[key]]
            summary = summarize(kind, times, flops, args.batch_size)
            first = workers[key].info["warmup"][kind]["first_call_s"]
            summary["compile_s"] = max(first - summary["step_s"], 0.0)
            # Ratios of step times within a round: against the baseline under the same policy,
            # and (for another policy) against the same implementation in float32.
            mine = round_medians(key, kind)
            ratios = [b / m for b, m in zip(round_medians(_worker_key("torch-baseline", policy, policies), kind), mine)]
            summary["ratio_to_baseline"] = statistics.median(ratios)
            summary["round_ratios"] = ratios
            if policy != "float32" and "float32" in policies:
                speedups = [f / m for f, m in zip(round_medians(_worker_key(name, "float32", policies), kind), mine)]
                summary["ratio_to_float32"] = statistics.median(speedups)
                summary["round_ratios_to_float32"] = speedups
            entry[kind] = summary
        result["implementations"][key] = entry
    if args.memory:
        result["memory"] = compare_memory(args, names)
    return result


def compare_memory(args, names):
    """Peak memory of one training step at batch 64, one fresh process per preset and implementation."""
    table = {}
    done = {}
    for preset in ARCHITECTURES:
        key = tuple(sorted((k, str(v)) for k, v in architecture(preset).items()))
        if key in done:  # the 64x64 presets share one architecture: measured once
            table[preset] = done[key]
            continue
        row = {}
        for name in names:
            print(f"memory: {preset} {name} ...", file=sys.stderr, flush=True)
            sub = argparse.Namespace(**{**vars(args), "preset": preset, "batch_size": MEMORY_BATCH_SIZE})
            command, env = _worker_command(sub, name, ["--memory-only", "--json"])
            completed = subprocess.run(command, env=env, capture_output=True, text=True)
            if completed.returncode:
                row[name] = {"error": completed.stderr.strip().splitlines()[-1:]}
                continue
            row[name] = json.loads(completed.stdout.strip().splitlines()[-1])["memory"]
        table[preset] = done[key] = row
    return table


# ------------------------------------------------------------------ output


def format_single(record):
    lines = [
        f"{record['implementation']} on {record['backend']} ({record.get('framework', '')}, {record['device']}), "
        f"preset {record['preset']}, batch {record['batch_size']}, {record['dtype_policy']}, "
        f"{record['parameters']:,} parameters, {record['forward_gflop_per_image']:.2f} GFLOP/image forward",
    ]
    for kind in Measurer.KINDS:
        if kind in record:
            s = record[kind]
            lines.append(
                f"  {kind:6s} {s['images_per_s']:8.2f} images/s  {s['gflop_per_s']:6.1f} GFLOP/s  "
                f"step {s['step_s'] * 1e3:8.1f} ms  compile {s['compile_s']:6.1f} s"
            )
    if "quality" in record:
        q = record["quality"]
        lines.append(
            f"  after {q['steps']} training steps: held-out bits/dim {q['held_out_bits_per_dim_after']:.4f} "
            f"(before {q['held_out_bits_per_dim_before']:.4f}; {q['test_images']} test patches), "
            f"train bits/dim of the last 10 steps {q['train_bits_per_dim_last_10']:.4f}, {q['seconds']:.0f} s"
        )
    if "memory" in record:
        m = record["memory"]
        lines.append(f"  memory: training step peak {m['step_peak_mb']:.0f} MB ({m['where']})")
    return "\n".join(lines)


def format_compare(result):
    kinds = [k for k in Measurer.KINDS if k in next(iter(result["implementations"].values()))]
    m = result["machine"]
    out = [
        f"Preset {result['preset']}, batch {result['batch_size']}, {result['dtype_policy']}; "
        f"{m['cpu']} ({m['cores']} cores, {m['cpu_flags']}); medians of {result['rounds']} rounds "
        f"(x {result['steps_per_round']} training steps, x {result['eval_batches_per_round']} evaluation and "
        f"sampling batches); ratios within each round against the baseline (under the same dtype policy), "
        f"then their median; "
        f"load average during the rounds {min(result['load_average']):.1f}-{max(result['load_average']):.1f}.",
        "",
    ]
    header = "| implementation |"
    rule = "| --- |"
    for kind in kinds:
        header += f" {kind} images/s (GFLOP/s) | {kind} ratio [min-max] |"
        rule += " ---: | ---: |"
    entries = result["implementations"].values()
    speedups = [k for k in kinds if any("ratio_to_float32" in e.get(k, {}) for e in entries)]
    for kind in speedups:
        header += f" {kind} vs float32 [min-max] |"
        rule += " ---: |"
    header += " train compile s |"
    rule += " ---: |"
    out += [header, rule]
    several = "," in result["dtype_policy"]
    for entry in result["implementations"].values():
        info = entry["info"]
        name = entry["implementation"]
        label = "plain PyTorch baseline" if name == "torch-baseline" else f"keras_realnvp, {name}"
        if info.get("jit_compile") is not None and name != "torch-baseline":
            label += f" (jit_compile={info['jit_compile']})"
        if several:
            label += f", {entry['dtype_policy']}"
        row = f"| {label} |"
        for kind in kinds:
            s = entry[kind]
            ratios = s["round_ratios"]
            row += (
                f" {s['images_per_s']:.2f} ({s['gflop_per_s']:.0f}) | {s['ratio_to_baseline']:.2f}x "
                f"[{min(ratios):.2f}-{max(ratios):.2f}] |"
            )
        for kind in speedups:
            s = entry[kind]
            if "ratio_to_float32" in s:
                r = s["round_ratios_to_float32"]
                row += f" {s['ratio_to_float32']:.2f}x [{min(r):.2f}-{max(r):.2f}] |"
            else:
                row += " |"
        row += f" {entry['train']['compile_s']:.0f} |" if "train" in entry else " |"
        out.append(row)
    if "memory" in result:
        out += ["", format_memory(result, list(result["implementations"]))]
    return "\n".join(out)


def format_memory(result, names):
    m = result["machine"]
    title = (f"Memory of one training step at batch {MEMORY_BATCH_SIZE} (MB), beyond what is resident before it; "
             f"{m['cpu']} ({m['cores']} cores):")
    out = [title, "", "| preset | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for preset, row in result["memory"].items():
        cells = []
        for name in names:
            cell = row.get(name, {})
            cells.append(f"{cell['step_peak_mb']:.0f}" if "step_peak_mb" in cell else "error")
        out.append(f"| {preset} | " + " | ".join(cells) + " |")
    out += ["", "Measured as:", *_memory_notes(result)]
    return "\n".join(out)


def _memory_notes(result):
    notes = {}
    for row in result["memory"].values():
        for name, cell in row.items():
            if "where" in cell:
                notes.setdefault(name, cell["where"])
    return [f"- {name}: {where}" for name, where in notes.items()]


# ------------------------------------------------------------------ main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(ARCHITECTURES) + sorted(SMOKE), default="cifar10")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--implementation", choices=IMPLEMENTATIONS, default="keras",
                        help="keras: keras_realnvp on KERAS_BACKEND; torch-baseline: tools/benchmarks/torch_realnvp.py")
    parser.add_argument("--dtype-policy", default="float32",
                        help="float32 or mixed_bfloat16; with --compare a comma-separated list (e.g. "
                        "float32,mixed_bfloat16) compares them in the same rounds")
    parser.add_argument("--jit-compile", choices=("auto", "true", "false", "eager"), default="auto",
                        help="passed to model.compile (auto: Keras' default per backend; eager: run_eagerly=True)")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per round")
    parser.add_argument("--eval-batches", type=int, default=3, help="timed evaluation and sampling batches per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls of each step before timing (>= 1)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of timed steps (medians over them)")
    parser.add_argument("--measure", type=lambda s: s.split(","), default=list(Measurer.KINDS),
                        help="comma-separated subset of train,eval,sample")
    parser.add_argument("--json", action="store_true", help="print one JSON record")
    parser.add_argument("--compare", action="store_true",
                        help="baseline and all backends in one process tree, with ratios")
    parser.add_argument("--backends", type=lambda s: s.split(","), default=["torch", "tensorflow", "jax"])
    parser.add_argument("--memory", action="store_true",
                        help="with --compare: peak memory of a training step at batch 64 for every preset")
    parser.add_argument("--memory-only", action="store_true",
                        help="only the peak memory of one training step (with --compare: every preset at batch 64)")
    parser.add_argument("--quality-steps", type=int, default=0,
                        help="instead of timing: train this many steps on the embedded photo patches and report "
                        "held-out bits/dim (compare float32 with mixed_bfloat16)")
    parser.add_argument("--matmul", action="store_true",
                        help="only: float32 and bfloat16 matrix-multiply GFLOP/s on this machine (PyTorch)")
    parser.add_argument("--log", default="benchmark_workers.log", help="--compare: the workers' stderr")
    parser.add_argument("--save-json", default=None, help="also write the JSON record to this file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.warmup < 1:
        parser.error("--warmup must be at least 1 (the first call compiles)")
    args.dtype_policies = args.dtype_policy.split(",")
    policies = args.dtype_policies
    if not set(policies) <= set(DTYPE_POLICIES) or len(set(policies)) < len(policies):
        parser.error(f"--dtype-policy: each of {DTYPE_POLICIES} at most once, got {args.dtype_policy!r}")
    if len(args.dtype_policies) > 1 and not (args.compare and not args.memory_only):
        parser.error("several --dtype-policy values need --compare (timing)")
    args.dtype_policy = args.dtype_policies[0]
    unknown = set(args.measure) - set(Measurer.KINDS)
    if unknown:
        parser.error(f"unknown --measure {sorted(unknown)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.memory_only and os.environ.get("MALLOC_MMAP_THRESHOLD_") is None and argv is None:
        # glibc reads this at start-up: restart with large blocks always mmap-ed (see Measurer.memory).
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})
    if args.serve:
        serve(args)
        return None
    if args.matmul:
        result = matmul_throughput()
        print(json.dumps(result) if args.json else
              f"{result['cpu']} ({result['cores']} cores, flags: {result['cpu_flags'] or 'no avx512/amx'}), "
              f"{result['device']}: float32 {result['float32']:.1f} GFLOP/s, bfloat16 {result['bfloat16']:.1f} "
              f"GFLOP/s ({result['bfloat16_over_float32']:.2f}x), {result['size']}x{result['size']} matmul")
        return result
    if args.compare and args.memory_only:
        names = [name for name in COMPARE_ORDER if name == "torch-baseline" or name in args.backends]
        result = {"machine": machine_description(), "memory": compare_memory(args, names)}
        if args.save_json:
            Path(args.save_json).write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result, indent=1) if args.json else format_memory(result, names))
        return result
    if args.compare:
        result = compare(args)
        if args.save_json:
            Path(args.save_json).write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result, indent=1) if args.json else format_compare(result))
        return result
    record = run_single(args)
    if args.save_json:
        Path(args.save_json).write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record) if args.json else format_single(record))
    return record


if __name__ == "__main__":
    main()
