"""Evaluate a preset: the `keras-realnvp evaluate` command (keras_realnvp/cli/evaluate.py), run from a checkout."""

import _checkout  # noqa: F401  (puts the checkout on sys.path)

from keras_realnvp.cli.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
