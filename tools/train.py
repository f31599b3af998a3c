"""Train Real NVP: the `keras-realnvp train` command (keras_realnvp/cli/train.py), run from a checkout."""

import _checkout  # noqa: F401  (puts the checkout on sys.path)

from keras_realnvp.cli.train import main

if __name__ == "__main__":
    raise SystemExit(main())
