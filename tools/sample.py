"""Draw samples: the `keras-realnvp sample` command (keras_realnvp/cli/sample.py), run from a checkout."""

import _checkout  # noqa: F401  (puts the checkout on sys.path)

from keras_realnvp.cli.sample import main

if __name__ == "__main__":
    raise SystemExit(main())
