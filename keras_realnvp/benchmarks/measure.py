"""Timing: warm-up, rounds of timed steps, their summary; one run in one process; training quality.

Training throughput is images/s over timed `train_step`s after warm-up (the first call's
extra time, tracing and compilation, is reported as compile time). GFLOP/s come from the
forward FLOPs of one image (a training step counts 3x). Peak memory is that of one training
step after warm-up: each framework's accounting where it has one (GPU allocators, XLA's
buffer assignment, TensorFlow's allocator), else the process's peak resident memory during
the step minus its resident memory just before it (PyTorch on a CPU).

Example:

>>> import argparse
>>> options = argparse.Namespace(preset="embedded_16", implementation="keras", batch_size=2,
...     dtype_policy="float32", jit_compile="auto", warmup=1, steps=1, eval_batches=1, rounds=1,
...     measure=["sample"], memory_only=False, quality_steps=0)
>>> record = run_single(options)
>>> record["sample"]["images_per_s"] > 0
True
"""

import statistics
import sys
import time

from keras_realnvp.benchmarks.machine import ResidentMemory, load_average, machine_description
from keras_realnvp.benchmarks.subjects import make_subject, options_architecture, options_overrides

KINDS = ("train", "eval", "sample")


def timed(fn) -> float:
    """Seconds `fn()` takes.

    Example:

    >>> timed(lambda: None) >= 0
    True
    """
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Measurer:
    """Warm-up, then rounds of timed steps of a subject (see `subjects`); keeps every per-step time.

    `warmup` untimed calls of each step first (the first one compiles), then per round
    `steps` training steps and `eval_batches` evaluation and sampling batches.

    Example:

    >>> class Subject:
    ...     def forward_flops(self): return 10
    ...     def train_step(self): pass
    >>> measurer = Measurer(Subject(), warmup=1, steps=2, eval_batches=1)
    >>> measurer.warm_up(["train"])
    >>> len(measurer.round(["train"])["train"])
    2
    """

    def __init__(self, subject, warmup: int, steps: int, eval_batches: int):
        self.subject = subject
        self.warmup, self.steps, self.eval_batches = warmup, steps, eval_batches
        self.flops = subject.forward_flops()
        self.warmup_times = {}

    def warm_up(self, kinds) -> None:
        """Call each step `warmup` times, untimed but for the first call's time (and the later ones')."""
        for kind in kinds:
            step = getattr(self.subject, f"{kind}_step")
            first = timed(step)
            later = [timed(step) for _ in range(max(self.warmup - 1, 0))]
            self.warmup_times[kind] = {"first_call_s": first, "later_s": later}

    def round(self, kinds) -> dict:
        """One round: the load average and each kind's per-step times."""
        result = {"load_average": load_average()}
        for kind in kinds:
            step = getattr(self.subject, f"{kind}_step")
            count = self.steps if kind == "train" else self.eval_batches
            result[kind] = [timed(step) for _ in range(count)]
        return result

    def memory(self) -> dict:
        """Memory of one training step after a warm-up step, in MB, and how it was measured."""
        subject = self.subject
        subject.train_step()  # compilation outside the measurement
        measured = subject.step_memory()
        if measured is not None:
            return {"where": measured[1], "step_peak_mb": measured[0] / 2**20}
        # PyTorch on a CPU allocates with malloc; with MALLOC_MMAP_THRESHOLD_ set (the command
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


def summarize(kind: str, times_per_round, flops_per_image: float, batch_size: int) -> dict:
    """Median step time over all steps of all rounds, images/s, GFLOP/s and each round's images/s.

    Example:

    >>> summary = summarize("eval", [[0.5, 0.5], [1.0]], flops_per_image=1e9, batch_size=4)
    >>> summary["step_s"], summary["images_per_s"], summary["gflop_per_s"], summary["round_images_per_s"]
    (0.5, 8.0, 8.0, [8.0, 4.0])
    """
    per_round = [statistics.median(t) for t in times_per_round]
    step = statistics.median([t for ts in times_per_round for t in ts])
    factor = 3 if kind == "train" else 1
    return {
        "step_s": step,
        "images_per_s": batch_size / step,
        "gflop_per_s": factor * flops_per_image * batch_size / step / 1e9,
        "round_images_per_s": [batch_size / t for t in per_round],
    }


def run_single(options) -> dict:
    """One implementation in this process: its description and a summary per measured kind (or memory, quality).

    `options` has the command's arguments (`keras_realnvp.cli.benchmark`): preset,
    implementation, batch_size, dtype_policy, jit_compile, warmup, steps, eval_batches,
    rounds, measure, memory_only, quality_steps, and optionally dtype_policies and
    quality_seeds (the training-quality runs: every policy with seeds 0 to quality_seeds - 1).
    See the module's example.
    """
    arch = options_architecture(options)
    record = {
        "preset": options.preset,
        "architecture": {**arch, "image_shape": list(arch["image_shape"])},
        "architecture_overrides": options_overrides(options),
        "batch_size": options.batch_size,
        "dtype_policy": options.dtype_policy,
    }
    subject = make_subject(options.implementation, arch, options.batch_size, options.dtype_policy,
                           options.jit_compile)
    measurer = Measurer(subject, options.warmup, options.steps, options.eval_batches)
    record.update(**subject.describe(), forward_gflop_per_image=measurer.flops / 1e9, machine=machine_description())
    if options.memory_only:
        record["memory"] = measurer.memory()
        return record
    if options.quality_steps:  # the Keras model only (the command checks)
        policies = getattr(options, "dtype_policies", None) or [options.dtype_policy]
        seeds = range(getattr(options, "quality_seeds", 1))
        record["quality"] = [
            training_quality(arch, options.batch_size, policy, options.quality_steps, seed, progress=True)
            for policy in policies
            for seed in seeds
        ]
        record["quality_summary"] = quality_summary(record["quality"])
        return record
    kinds = [k for k in KINDS if k in options.measure]
    measurer.warm_up(kinds)
    rounds = [measurer.round(kinds) for _ in range(options.rounds)]
    for kind in kinds:
        summary = summarize(kind, [r[kind] for r in rounds], measurer.flops, options.batch_size)
        summary["compile_s"] = max(measurer.warmup_times[kind]["first_call_s"] - summary["step_s"], 0.0)
        record[kind] = summary
    record["load_average"] = [r["load_average"] for r in rounds]
    return record


def training_quality(arch, batch_size: int, dtype_policy: str, steps: int, seed: int = 0,
                     progress: bool = False) -> dict:
    """Held-out bits/dim of the Keras model after `steps` training steps from a fixed start.

    The initial weights and the held-out images (dequantized with seed 0) are the same for
    every dtype policy and seed; `seed` picks the training batches and the dequantization
    noise of training. The same seed under two dtype policies trains on the same batches, so
    running seeds 0, 1, 2 under float32 and under mixed_bfloat16 compares the policies'
    difference with float32's own spread from run to run (`quality_summary`). With
    `progress`, a line on stderr every 10 steps (the command's runs take minutes each).

    Example:

    >>> from keras_realnvp.benchmarks.subjects import architecture
    >>> quality = training_quality(architecture("embedded_16"), batch_size=4, dtype_policy="float32", steps=1)
    >>> quality["steps"], quality["test_images"], quality["seed"]
    (1, 64, 0)
    """
    import keras
    import numpy as np

    from keras_realnvp import RealNVP
    from keras_realnvp.data import load_embedded_patches
    from keras_realnvp.data.embedded import dequantize_numpy
    from keras_realnvp.training.optimizer import GlobalBatchAdam

    keras.utils.set_random_seed(0)  # the initial weights: the same for every seed and policy
    keras.config.set_dtype_policy(dtype_policy)
    model = RealNVP(**arch, seed=seed)  # `seed` drives the training dequantization noise
    model.compile(optimizer=GlobalBatchAdam(1e-3, global_clipnorm=100.0))
    size = arch["image_shape"][0]
    train = load_embedded_patches("train", patch_size=size)
    test = dequantize_numpy(load_embedded_patches("test", patch_size=size)[:64], 0)

    def held_out():
        return float(np.mean(keras.ops.convert_to_numpy(model.bits_per_dim(test))))

    before = held_out()
    rng = np.random.default_rng(seed)
    losses = []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        batch = train[rng.choice(len(train), batch_size, replace=False)]
        losses.append(float(model.train_on_batch(batch, return_dict=True)["bits_per_dim"]))
        if progress and (step % 10 == 0 or step == steps):
            print(f"quality {dtype_policy} seed {seed}: step {step}/{steps}, training bits/dim {losses[-1]:.4f}, "
                  f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    return {
        "dtype_policy": dtype_policy,
        "seed": seed,
        "steps": steps,
        "held_out_bits_per_dim_before": before,
        "held_out_bits_per_dim_after": held_out(),
        "train_bits_per_dim_last_10": float(np.mean(losses[-10:])),
        "test_images": len(test),
        "seconds": seconds,
    }


def quality_summary(runs) -> dict:
    """Per dtype policy: the held-out bits/dim of its runs (one per seed), their mean, min and max.

    With float32 and another policy both run over two seeds or more, `"comparison"` says
    whether the other policy's mean lies within float32's spread from run to run: its mean
    differs from float32's mean by no more than float32's max - min.

    Example:

    >>> runs = [{"dtype_policy": p, "seed": s, "held_out_bits_per_dim_after": v}
    ...         for p, s, v in [("float32", 0, 5.0), ("float32", 1, 5.2), ("mixed_bfloat16", 0, 5.15),
    ...                         ("mixed_bfloat16", 1, 5.25)]]
    >>> summary = quality_summary(runs)
    >>> round(summary["float32"]["spread"], 6), round(summary["mixed_bfloat16"]["mean"], 6)
    (0.2, 5.2)
    >>> comparison = summary["comparison"]["mixed_bfloat16"]
    >>> round(comparison["difference_of_means"], 6), comparison["within_float32_spread"]
    (0.1, True)
    """
    summary = {}
    for run in runs:
        entry = summary.setdefault(run["dtype_policy"], {"seeds": [], "held_out_bits_per_dim": []})
        entry["seeds"].append(run["seed"])
        entry["held_out_bits_per_dim"].append(run["held_out_bits_per_dim_after"])
    for entry in summary.values():
        values = entry["held_out_bits_per_dim"]
        entry.update(mean=statistics.fmean(values), min=min(values), max=max(values),
                     spread=max(values) - min(values))
    reference = summary.get("float32")
    if reference is not None and len(reference["seeds"]) > 1:
        comparison = {}
        for policy, entry in summary.items():
            if policy != "float32" and len(entry["seeds"]) > 1:
                difference = entry["mean"] - reference["mean"]
                comparison[policy] = {
                    "difference_of_means": difference,
                    "float32_spread": reference["spread"],
                    "within_float32_spread": abs(difference) <= reference["spread"],
                }
        summary["comparison"] = comparison
    return summary
