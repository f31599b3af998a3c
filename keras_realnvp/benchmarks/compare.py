"""`--compare`: the plain-PyTorch baseline and the backends in worker processes, taking turns.

One worker process per implementation (and dtype policy): the parent starts and warms them up
one after the other, then in each of `rounds` rounds each worker in turn times its steps
while the others wait. Figures are medians over rounds; ratios are taken within each round
against the baseline under the same dtype policy (then their median), so load from other
processes on the machine affects both sides of a ratio alike. With several dtype policies,
each implementation's mixed-precision speed-up is the ratio to its own float32 worker.

A worker is `python -m keras_realnvp benchmark --serve ...` (the package's own command, so
this works from an installed package); it answers `round` lines on stdin with JSON lines.

Example:

>>> import argparse
>>> options = argparse.Namespace(preset="cifar10", batch_size=16, steps=3, eval_batches=3, warmup=2,
...     dtype_policy="float32", jit_compile="auto", measure=["train"])
>>> command, env = worker_command(options, "jax")
>>> command[1:5], env["KERAS_BACKEND"]
(['-m', 'keras_realnvp', 'benchmark', '--implementation'], 'jax')
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from keras_realnvp.benchmarks.machine import machine_description
from keras_realnvp.benchmarks.measure import KINDS, Measurer, summarize
from keras_realnvp.benchmarks.subjects import (
    architecture,
    make_subject,
    options_architecture,
    options_overrides,
    preset_names,
)

COMPARE_ORDER = ("torch-baseline", "torch", "tensorflow", "jax")
MEMORY_BATCH_SIZE = 64
_REPLY = "@@benchmark "
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def implementations(backends) -> list:
    """The baseline and the chosen backends, in the order of the tables.

    Example:

    >>> implementations(["jax", "torch"])
    ['torch-baseline', 'torch', 'jax']
    """
    return [name for name in COMPARE_ORDER if name == "torch-baseline" or name in backends]


def worker_command(options, implementation, extra=(), dtype_policy=None):
    """The command line and environment of a worker (`dtype_policy` default: `options.dtype_policy`).

    See the module's example. The environment sets `KERAS_BACKEND` (the baseline's start-up
    check builds the Keras model on PyTorch unless told otherwise), puts this package first
    on `PYTHONPATH` (a checkout that was not installed works too) and makes PyTorch's OpenMP
    threads wait passively: when other processes share the cores, a spinning thread loses
    its time slice and every parallel operation then waits for the scheduler (measured: 8 ms
    for a 100k-element multiply, 20 us with passive waiting). Set `OMP_WAIT_POLICY` to override.
    """
    command = [
        sys.executable, "-m", "keras_realnvp", "benchmark",
        "--implementation", "torch-baseline" if implementation == "torch-baseline" else "keras",
        "--preset", options.preset, "--batch-size", str(options.batch_size), "--steps", str(options.steps),
        "--eval-batches", str(options.eval_batches), "--warmup", str(options.warmup),
        "--dtype-policy", dtype_policy or options.dtype_policy, "--jit-compile", options.jit_compile,
        "--measure", ",".join(options.measure),
        *[item for key, value in options_overrides(options).items()
          for item in (f"--{key.replace('_', '-')}", str(value))],
        *extra,
    ]
    env = dict(os.environ)
    if implementation != "torch-baseline":
        env["KERAS_BACKEND"] = implementation
    else:
        env.setdefault("KERAS_BACKEND", "torch")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
    return command, env


class Worker:
    """One worker process: started and warmed up on creation (`info`), then `round()` and `close()`."""

    def __init__(self, options, implementation, log, dtype_policy, name):
        command, env = worker_command(options, implementation, ["--serve"], dtype_policy)
        self.name = name
        self.process = subprocess.Popen(
            command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
        )
        self.info = self._read()

    def _read(self):
        while True:  # frameworks may print to stdout too: replies carry a prefix
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"the {self.name} worker exited (code {self.process.wait()}); see its log")
            if line.startswith(_REPLY):
                return json.loads(line[len(_REPLY):])

    def round(self) -> dict:
        """The worker's timings of one round."""
        self.process.stdin.write("round\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        """Ask the worker to quit and wait for it."""
        try:
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass
        self.process.wait()


def _reply(obj):
    sys.__stdout__.write(_REPLY + json.dumps(obj) + "\n")
    sys.__stdout__.flush()


def serve(options) -> None:
    """The worker's side: warm up, reply with its description, then answer `round` lines until `quit`."""
    sys.stdout = sys.stderr  # stdout carries the replies only
    subject = make_subject(options.implementation, options_architecture(options), options.batch_size,
                           options.dtype_policy, options.jit_compile)
    measurer = Measurer(subject, options.warmup, options.steps, options.eval_batches)
    kinds = [k for k in KINDS if k in options.measure]
    measurer.warm_up(kinds)
    _reply({"ready": True, **subject.describe(), "forward_flops": measurer.flops, "warmup": measurer.warmup_times})
    for line in sys.stdin:
        command = line.strip()
        if command == "round":
            _reply(measurer.round(kinds))
        elif command == "quit":
            break


def _worker_key(name, policy, policies):
    return name if len(policies) == 1 else f"{name} {policy}"


def compare(options) -> dict:
    """Run the workers' rounds and return the comparison record (`report.format_compare` prints it).

    `options`: the command's arguments (preset, batch_size, steps, eval_batches, warmup,
    rounds, dtype_policies, jit_compile, measure, backends, log, memory).
    """
    names = implementations(options.backends)
    policies = options.dtype_policies
    keys = [(name, policy, _worker_key(name, policy, policies)) for name in names for policy in policies]
    kinds = [k for k in KINDS if k in options.measure]
    started = time.time()
    workers = {}
    with open(options.log, "w") as log:
        try:
            for name, policy, key in keys:
                print(f"starting {key} ...", file=sys.stderr, flush=True)
                workers[key] = Worker(options, name, log, policy, key)
            rounds = {key: [] for _, _, key in keys}
            for r in range(options.rounds):
                for _, _, key in keys:
                    rounds[key].append(workers[key].round())
                print(f"round {r + 1}/{options.rounds} done", file=sys.stderr, flush=True)
        finally:
            for worker in workers.values():
                worker.close()
    arch = options_architecture(options)
    result = {
        "preset": options.preset, "batch_size": options.batch_size, "dtype_policy": ",".join(policies),
        "architecture": {**arch, "image_shape": list(arch["image_shape"])},
        "architecture_overrides": options_overrides(options),
        "machine": machine_description(), "rounds": options.rounds, "steps_per_round": options.steps,
        "eval_batches_per_round": options.eval_batches, "wall_s": time.time() - started,
        "load_average": [rd["load_average"] for key in rounds for rd in rounds[key]], "implementations": {},
    }
    flops = workers[keys[0][2]].info["forward_flops"]

    def round_medians(key, kind):
        return [statistics.median(rd[kind]) for rd in rounds[key]]

    for name, policy, key in keys:
        info = {k: v for k, v in workers[key].info.items() if k not in ("ready", "warmup")}
        entry = {"info": info, "implementation": name, "dtype_policy": policy}
        for kind in kinds:
            summary = summarize(kind, [rd[kind] for rd in rounds[key]], flops, options.batch_size)
            first = workers[key].info["warmup"][kind]["first_call_s"]
            summary["compile_s"] = max(first - summary["step_s"], 0.0)
            # Ratios of step times within a round: against the baseline under the same policy,
            # and (for another policy) against the same implementation in float32.
            mine = round_medians(key, kind)
            baseline = round_medians(_worker_key("torch-baseline", policy, policies), kind)
            ratios = [b / m for b, m in zip(baseline, mine)]
            summary["ratio_to_baseline"] = statistics.median(ratios)
            summary["round_ratios"] = ratios
            if policy != "float32" and "float32" in policies:
                speedups = [f / m for f, m in zip(round_medians(_worker_key(name, "float32", policies), kind), mine)]
                summary["ratio_to_float32"] = statistics.median(speedups)
                summary["round_ratios_to_float32"] = speedups
            entry[kind] = summary
        result["implementations"][key] = entry
    if options.memory:
        result["memory"] = compare_memory(options, names)
    return result


def compare_memory(options, names) -> dict:
    """Peak memory of one training step at batch 64, one fresh process per paper preset and implementation.

    Presets of the same architecture (the 64x64 ones) are measured once. PyTorch on a CPU
    runs with `MALLOC_MMAP_THRESHOLD_=65536`, so that freed blocks leave resident memory.
    """
    table, done = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        for preset in preset_names(paper_only=True):
            key = tuple(sorted((k, str(v)) for k, v in architecture(preset).items()))
            if key in done:
                table[preset] = done[key]
                continue
            row = {}
            for name in names:
                print(f"memory: {preset} {name} ...", file=sys.stderr, flush=True)
                sub = argparse.Namespace(**{**vars(options), "preset": preset, "batch_size": MEMORY_BATCH_SIZE})
                record = Path(scratch) / f"{preset}_{name}.json"  # the worker's whole record
                command, env = worker_command(sub, name, ["--memory-only", "--save-json", str(record)])
                env.setdefault("MALLOC_MMAP_THRESHOLD_", "65536")
                completed = subprocess.run(command, env=env, capture_output=True, text=True)
                if completed.returncode:
                    row[name] = {"error": completed.stderr.strip().splitlines()[-1:]}
                    continue
                row[name] = json.loads(record.read_text())["memory"]
            table[preset] = done[key] = row
    return table
