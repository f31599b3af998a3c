"""Benchmark: the `keras-realnvp benchmark` command (keras_realnvp/cli/benchmark.py), runnable from a checkout."""

import _checkout  # noqa: F401

from keras_realnvp.cli.benchmark import main

if __name__ == "__main__":
    raise SystemExit(main())
