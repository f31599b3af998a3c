"""The `keras-realnvp` command: train, evaluate, sample, publish, diagnose, benchmark.

`keras-realnvp COMMAND [options]` (installed with the package) and
`python -m keras_realnvp COMMAND [options]` are the same program; in a checkout,
`python tools/COMMAND.py [options]` runs the same code too. Each command is one module
of this package with a `main(argv=None) -> int`; `keras-realnvp COMMAND --help` lists its
options. A command's module is imported only when it runs.

Example:

>>> main(["--help"])  # doctest: +ELLIPSIS
usage: keras-realnvp COMMAND [options]
...
0
"""

import importlib
import sys

PROGRAM = "keras-realnvp"

COMMANDS = {
    "train": "train Real NVP on a preset's dataset, an image folder or a Hub dataset",
    "evaluate": "held-out bits/dim of a preset on its dataset (or another)",
    "sample": "draw samples and the paper's experiments (manifold, extrapolate, compress, swap, toy)",
    "publish": "upload a trained preset folder to the Hugging Face Hub, with a model card",
    "diagnose": "check a model's log-determinants, invertibility and calibration",
    "benchmark": "speed and memory of training, evaluation and sampling, against plain PyTorch",
}


def usage() -> str:
    """The top-level help text: the commands, one line each.

    Example:

    >>> print(usage().splitlines()[0])
    usage: keras-realnvp COMMAND [options]
    """
    width = max(len(name) for name in COMMANDS)
    lines = [f"usage: {PROGRAM} COMMAND [options]", "", "Real NVP for Keras 3 (TensorFlow, JAX, PyTorch).", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    lines += ["", f"`{PROGRAM} COMMAND --help` shows a command's options. The backend is KERAS_BACKEND's",
              f"(jax, torch or tensorflow), e.g. KERAS_BACKEND=jax {PROGRAM} train."]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run `keras-realnvp` with `argv` (default: the process's arguments); returns the exit status.

    Example:

    >>> main(["no-such-command"])
    2
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from keras_realnvp.version import __version__

        print(f"{PROGRAM} {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"{PROGRAM}: error: unknown command {name!r}; the commands are {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    module = importlib.import_module(f"keras_realnvp.cli.{name}")
    status = module.main(rest)
    return status if isinstance(status, int) else 0
