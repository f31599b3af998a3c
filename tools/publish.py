"""Publish a preset: the `keras-realnvp publish` command (keras_realnvp/cli/publish.py), run from a checkout."""

import _checkout  # noqa: F401  (puts the checkout on sys.path)

from keras_realnvp.cli.publish import main

if __name__ == "__main__":
    raise SystemExit(main())
