"""`python -m keras_realnvp COMMAND ...` is the `keras-realnvp` command (see `keras_realnvp.cli`)."""

from keras_realnvp.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
