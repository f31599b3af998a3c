"""Measure training, evaluation and sampling speed and peak memory of a Real NVP preset's architecture.

One implementation per run, on the current Keras backend (KERAS_BACKEND) or the plain-PyTorch
baseline (keras_realnvp/backend/torch_baseline.py: the same architecture written by hand, checked
at start-up to have the same parameter count and the same log-density as the Keras model):

    KERAS_BACKEND=jax keras-realnvp benchmark                      # cifar10, batch 16
    KERAS_BACKEND=torch keras-realnvp benchmark --json             # one JSON record
    keras-realnvp benchmark --implementation torch-baseline
    KERAS_BACKEND=tensorflow keras-realnvp benchmark --dtype-policy mixed_bfloat16
    KERAS_BACKEND=torch keras-realnvp benchmark --quality-steps 100 --quality-seeds 3 \
        --dtype-policy float32,mixed_bfloat16    # held-out bits/dim: mixed against float32's spread

Training throughput is images/s over timed `train_on_batch` steps after warm-up (the first
step's extra time, tracing and compilation, is reported as compile time), with uint8 batches
dequantized inside the model as in `fit`. Sampling is `model.sample(batch)`, evaluation
`model.bits_per_dim(batch)`. GFLOP/s come from `keras_realnvp.flops.forward_flops` (a training
step counts 3x). Peak memory is that of one training step after warm-up (see
keras_realnvp/benchmarks/measure.py).

--compare runs the baseline and the backends in one process tree, one worker process per
implementation taking turns round by round, and reports ratios against the baseline within
each round (keras_realnvp/benchmarks/compare.py):

    keras-realnvp benchmark --compare                    # the README table (markdown)
    keras-realnvp benchmark --compare --memory           # plus peak memory at batch 64, every paper preset
    keras-realnvp benchmark --compare --memory-only      # only the peak memory at batch 64
    keras-realnvp benchmark --compare --dtype-policy float32,mixed_bfloat16   # mixed vs float32
    keras-realnvp benchmark --matmul       # can bfloat16 pay off here? float32 vs bfloat16 matmul

Device placement is left to each framework (a GPU if it sees one), so this runs unchanged on
a GPU machine. The data-loading benchmark is `python -m keras_realnvp.benchmarks.data_loading`.
"""

import argparse
import json
import os
import sys
from pathlib import Path

from keras_realnvp.cli.arguments import HelpFormatter, fail, non_negative_int, positive_int, prog

DTYPE_POLICIES = ("float32", "mixed_bfloat16")
KINDS = ("train", "eval", "sample")


def _names(text):
    return [part for part in text.split(",") if part]


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser.

    Example:

    >>> build_parser().parse_args(["--preset", "embedded_16", "--steps", "1"]).steps
    1
    """
    from keras_realnvp.benchmarks.subjects import IMPLEMENTATIONS, preset_names

    parser = argparse.ArgumentParser(prog=prog("benchmark"), description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--preset", choices=preset_names(), default="cifar10",
                        help="the built-in preset whose architecture is measured")
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--num-scales", type=positive_int, default=None,
                        help="override the preset's number of scales (a smaller or larger network, same images)")
    parser.add_argument("--filters", type=positive_int, default=None, help="override the preset's filters")
    parser.add_argument("--num-blocks", type=positive_int, default=None, help="override the preset's residual blocks")
    parser.add_argument("--implementation", choices=IMPLEMENTATIONS, default="keras",
                        help="keras: keras_realnvp on KERAS_BACKEND; torch-baseline: the plain-PyTorch baseline")
    parser.add_argument("--dtype-policy", default="float32",
                        help="float32 or mixed_bfloat16; with --compare a comma-separated list (e.g. "
                        "float32,mixed_bfloat16) compares them in the same rounds")
    parser.add_argument("--jit-compile", choices=("auto", "true", "false", "eager"), default="auto",
                        help="passed to model.compile (auto: Keras' default per backend; eager: run_eagerly=True)")
    parser.add_argument("--steps", type=positive_int, default=3, help="timed training steps per round")
    parser.add_argument("--eval-batches", type=positive_int, default=3,
                        help="timed evaluation and sampling batches per round")
    parser.add_argument("--warmup", type=positive_int, default=2,
                        help="untimed calls of each step before timing (the first compiles)")
    parser.add_argument("--rounds", type=positive_int, default=3, help="rounds of timed steps (medians over them)")
    parser.add_argument("--measure", type=_names, default=list(KINDS),
                        help="comma-separated subset of train,eval,sample")
    parser.add_argument("--json", action="store_true", help="print one JSON record")
    parser.add_argument("--compare", action="store_true", help="baseline and backends in one process tree, with ratios")
    parser.add_argument("--backends", type=_names, default=["torch", "tensorflow", "jax"],
                        help="--compare: the backends besides the baseline")
    parser.add_argument("--memory", action="store_true",
                        help="with --compare: peak memory of a training step at batch 64 for every paper preset")
    parser.add_argument("--memory-only", action="store_true",
                        help="only the peak memory of one training step (with --compare: every paper preset, batch 64)")
    parser.add_argument("--quality-steps", type=non_negative_int, default=0,
                        help="instead of timing: train this many steps on the embedded photo patches and report "
                        "held-out bits/dim (compare float32 with mixed_bfloat16)")
    parser.add_argument("--quality-seeds", type=positive_int, default=1,
                        help="with --quality-steps: train once per seed 0..N-1 (batches and noise; the same start) "
                        "and per --dtype-policy, and compare each policy's mean with float32's spread")
    parser.add_argument("--matmul", action="store_true",
                        help="only: float32 and bfloat16 matrix-multiply GFLOP/s on this machine (current backend)")
    parser.add_argument("--log", default="benchmark_workers.log", help="--compare: the workers' stderr")
    parser.add_argument("--save-json", default=None, help="also write the JSON record to this file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    """The checked arguments; `dtype_policies` holds every `--dtype-policy`, `dtype_policy` the first.

    Example:

    >>> args = parse_args(["--compare", "--dtype-policy", "float32,mixed_bfloat16"])
    >>> args.dtype_policies, args.dtype_policy
    (['float32', 'mixed_bfloat16'], 'float32')
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    policies = args.dtype_policy.split(",")
    if not set(policies) <= set(DTYPE_POLICIES) or len(set(policies)) < len(policies):
        parser.error(f"--dtype-policy: each of {DTYPE_POLICIES} at most once, got {args.dtype_policy!r}")
    if len(policies) > 1 and not (args.compare and not args.memory_only) and not args.quality_steps:
        parser.error("several --dtype-policy values need --compare (timing) or --quality-steps")
    if args.quality_steps and args.compare:
        parser.error("--quality-steps runs in one process: drop --compare")
    args.dtype_policies, args.dtype_policy = policies, policies[0]
    unknown = set(args.measure) - set(KINDS)
    if unknown or not args.measure:
        parser.error(f"--measure: a comma-separated subset of {','.join(KINDS)}, got {','.join(args.measure)!r}")
    unknown = set(args.backends) - {"torch", "tensorflow", "jax"}
    if unknown:
        parser.error(f"--backends: unknown {sorted(unknown)}")
    from keras_realnvp.benchmarks.subjects import options_architecture, options_overrides

    overridden = options_overrides(args)
    if overridden and args.compare and (args.memory or args.memory_only):
        parser.error("--num-scales, --filters and --num-blocks change one architecture; --compare --memory "
                     "measures every paper preset's own")
    if overridden:  # checked here, before any worker starts
        from keras_realnvp.models.size_limits import check_model_size

        try:
            check_model_size(**options_architecture(args))
        except ValueError as error:
            parser.error(str(error))
    if args.quality_steps and args.implementation != "keras":
        parser.error("--quality-steps measures the Keras model (--implementation keras)")
    return args


def _missing_environment(args) -> dict:
    """Variables PyTorch and glibc read at start-up that this run wants and the process lacks.

    Only where this process computes with PyTorch: `OMP_WAIT_POLICY=PASSIVE` (spinning OpenMP
    threads lose their time slice to other processes on shared cores), and for a memory
    measurement `MALLOC_MMAP_THRESHOLD_=65536` (freed blocks leave resident memory).
    --compare's workers get them from their parent.
    """
    import keras

    uses_torch = args.implementation == "torch-baseline" or keras.backend.backend() == "torch"
    if args.compare or args.serve or not uses_torch:
        return {}
    wanted = {"OMP_WAIT_POLICY": "PASSIVE", **({"MALLOC_MMAP_THRESHOLD_": "65536"} if args.memory_only else {})}
    return {name: value for name, value in wanted.items() if name not in os.environ}


def _is_the_process_command_line(argv) -> bool:
    """Whether `argv` is this process's own command line (so it may be restarted with another environment)."""
    if argv is None:
        return True
    return list(argv) == sys.argv[1:] or (sys.argv[1:2] == ["benchmark"] and list(argv) == sys.argv[2:])


def _write(record, args, text) -> None:
    if args.save_json:
        Path(args.save_json).write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1) if args.json else text)


def main(argv=None) -> int:
    """Run `keras-realnvp benchmark` with `argv` (default: the process's arguments); returns the exit status.

    Example:

    >>> try:
    ...     main(["--dtype-policy", "float16"])
    ... except SystemExit as stop:
    ...     print(stop.code)
    2
    """
    args = parse_args(argv)
    missing = _missing_environment(args)
    if missing and _is_the_process_command_line(argv):  # read at start-up: restart with them
        os.execve(sys.executable, sys.orig_argv, {**os.environ, **missing})
    from keras_realnvp.benchmarks import compare, machine, measure, report

    try:
        if args.serve:
            compare.serve(args)
        elif args.matmul:
            result = machine.matmul_throughput()
            _write(result, args, report.format_matmul(result))
        elif args.compare and args.memory_only:
            names = compare.implementations(args.backends)
            result = {"machine": machine.machine_description(), "memory": compare.compare_memory(args, names)}
            _write(result, args, report.format_memory(result, names))
        elif args.compare:
            result = compare.compare(args)
            _write(result, args, report.format_compare(result))
        else:
            record = measure.run_single(args)
            _write(record, args, report.format_single(record))
    except RuntimeError as error:  # a worker that exited
        fail(error, 1)
    return 0
