"""Diagnose a preset: the `keras-realnvp diagnose` command (keras_realnvp/cli/diagnose.py), run from a checkout."""

import _checkout  # noqa: F401  (puts the checkout on sys.path)

from keras_realnvp.cli.diagnose import main

if __name__ == "__main__":
    raise SystemExit(main())
