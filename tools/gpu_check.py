"""GPU check driver: one training step, an encode/decode round trip and `benchmark --compare` per backend.

Run by tools/gpu_check.sh on a bare CUDA machine (PyTorch and JAX installed, Keras and this
package from the wheels folder and the checkout). Each part runs in its own process under a
time limit, all within `--budget` seconds; the record (GPU, versions, each part's result or
error) is rewritten after every part, so whatever finished survives a kill:

    python tools/gpu_check.py --output gpu_check.json            # torch and jax, on the GPU
    python tools/gpu_check.py --cpu-smoke --output /tmp/smoke.json   # the same logic, tiny, on a CPU

This file imports no backend itself: the parts are `keras-realnvp` code run in subprocesses.
"""

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "@@gpu_check "
PACKAGES = ("torch", "jax", "jaxlib", "keras", "numpy", "ml_dtypes", "optree", "h5py", "nvidia-cudnn-cu12")


def versions() -> dict:
    """Installed versions of the packages that matter here (None where absent), without importing them."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def gpus() -> list:
    """`nvidia-smi`'s name, total memory and driver of each GPU ([] without nvidia-smi)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [dict(zip(("name", "memory", "driver"), (f.strip() for f in line.split(",")))) for line in out.splitlines()]


def model_part(preset: str, batch_size: int) -> dict:
    """In a child process: a training step of `preset`'s architecture (two, the second timed) and a round trip."""
    sys.path.insert(0, str(ROOT))
    import keras
    import numpy as np

    from keras_realnvp import RealNVP
    from keras_realnvp.backend.devices import device_description
    from keras_realnvp.benchmarks.subjects import architecture, pixels
    from keras_realnvp.data.embedded import dequantize_numpy

    keras.utils.set_random_seed(0)
    model = RealNVP(**architecture(preset), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=100.0))
    batch = pixels(architecture(preset)["image_shape"], batch_size, seed=0)
    start = time.perf_counter()
    first = float(model.train_on_batch(batch, return_dict=True)["loss"])
    compiled = time.perf_counter()
    second = float(model.train_on_batch(batch, return_dict=True)["loss"])
    step = time.perf_counter() - compiled
    images = dequantize_numpy(batch, 0).astype("float32")
    start_trip = time.perf_counter()
    back = keras.ops.convert_to_numpy(model.decode(model.encode(images)))
    return {"preset": preset, "batch_size": batch_size, **device_description(), "losses": [first, second],
            "first_step_s": compiled - start, "second_step_s": step, "finite": bool(np.isfinite([first, second]).all()),
            "round_trip_max_abs_error": float(np.abs(back - images).max()),
            "round_trip_s": time.perf_counter() - start_trip}


def _tail(text, lines=15):
    return (text or "").strip().splitlines()[-lines:]


def run_part(command, env, timeout: float, result_file=None) -> dict:
    """Run one part; its result (the `MARK` line of stdout, or `result_file`'s JSON) or its error, and its seconds."""
    start = time.monotonic()
    # A session of its own: on a time-out the whole group goes (--compare's workers hold the GPU).
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        return {"error": f"timed out after {timeout:.0f} s", "stderr_tail": _tail(stderr), "seconds": round(timeout)}
    seconds = round(time.monotonic() - start, 1)
    if process.returncode:
        return {"error": f"exit status {process.returncode}", "stderr_tail": _tail(stderr), "seconds": seconds}
    if result_file is not None:
        return {"result": json.loads(Path(result_file).read_text()), "seconds": seconds}
    marked = [line[len(MARK):] for line in stdout.splitlines() if line.startswith(MARK)]
    if not marked:
        return {"error": "no result printed", "stderr_tail": _tail(stderr), "seconds": seconds}
    return {"result": json.loads(marked[-1]), "seconds": seconds}


def plan(args, scratch: Path) -> list:
    """The parts: `(name, command, environment, time limit, result file or None)`, in order."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}  # JAX and PyTorch workers share the GPU in --compare
    parts = []
    for backend in args.backends:
        command = [sys.executable, str(Path(__file__).resolve()), "--part", "model", "--preset", args.model_preset,
                   "--batch-size", str(args.model_batch_size)]
        parts.append((f"{backend} model", command, {**env, "KERAS_BACKEND": backend}, args.model_timeout, None))
    for preset in args.compare_presets:
        result_file = scratch / f"compare_{preset}.json"
        command = [sys.executable, "-m", "keras_realnvp", "benchmark", "--compare", "--backends",
                   ",".join(args.backends), "--preset", preset, "--batch-size", str(args.compare_batch_size),
                   "--rounds", "1", "--steps", "1", "--eval-batches", "1", "--warmup", "1", "--measure",
                   "train,sample", "--log", str(scratch / f"workers_{preset}.log"), "--save-json", str(result_file)]
        parts.append((f"compare {preset}", command, env, args.compare_timeout, result_file))
    return parts


def write(record: dict, path: Path) -> None:
    """Write the record as JSON (through a temporary file, so a kill never leaves half a record)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=1) + "\n")
    temporary.replace(path)


def parse_args(argv=None) -> argparse.Namespace:
    """The driver's arguments; `--cpu-smoke` switches to embedded_16, tiny batches and PyTorch only."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path(".")
    parser.add_argument("--output", type=Path, default=out / "gpu_check.json")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for all parts together")
    parser.add_argument("--cpu-smoke", action="store_true", help="embedded_16, batch 4, torch only: test the logic")
    parser.add_argument("--backends", type=lambda s: s.split(","), default=None)
    parser.add_argument("--install-log", type=Path, default=None, help="the installs' output, its tail is recorded")
    parser.add_argument("--install-status", type=int, default=None)
    parser.add_argument("--part", choices=["model"], help=argparse.SUPPRESS)
    parser.add_argument("--preset", default="cifar10", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    smoke = args.cpu_smoke
    args.backends = args.backends or (["torch"] if smoke else ["torch", "jax"])
    args.model_preset, args.model_batch_size = ("embedded_16", 4) if smoke else ("cifar10", 16)
    args.compare_presets = ["embedded_16"] if smoke else ["cifar10", "celeba_64"]
    args.compare_batch_size = 4 if smoke else 64
    args.model_timeout, args.compare_timeout = (150.0, 240.0) if smoke else (100.0, 150.0)
    return args


def main(argv=None) -> int:
    """Run every part within the budget and write the record; the exit status is 1 if any part failed."""
    args = parse_args(argv)
    if args.part == "model":
        print(MARK + json.dumps(model_part(args.preset, args.batch_size)), flush=True)
        return 0
    deadline = time.monotonic() + args.budget
    record = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "mode": "cpu-smoke" if args.cpu_smoke else "gpu", "host": platform.node(),
              "python": platform.python_version(), "gpus": gpus(), "versions": versions(), "parts": {}}
    if args.install_status is not None:
        log = args.install_log.read_text(errors="replace") if args.install_log and args.install_log.exists() else ""
        record["install"] = {"status": args.install_status, "tail": _tail(log, 10)}
    with tempfile.TemporaryDirectory() as scratch:
        for name, command, env, limit, result_file in plan(args, Path(scratch)):
            remaining = deadline - time.monotonic()
            if remaining < 15:
                record["parts"][name] = {"error": "skipped: the time budget was spent"}
            else:
                print(f"{name} (at most {min(limit, remaining):.0f} s) ...", file=sys.stderr, flush=True)
                record["parts"][name] = run_part(command, env, min(limit, remaining), result_file)
            write(record, args.output)
    record["seconds"] = round(args.budget - (deadline - time.monotonic()), 1)
    write(record, args.output)
    failed = [name for name, part in record["parts"].items() if "error" in part]
    print(f"wrote {args.output}; " + (f"failed: {', '.join(failed)}" if failed else "every part passed"),
          file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
