"""What the commands share: argument types, the help layout, one-line errors and the program name.

Example:

>>> positive_int("3"), non_negative_float("0.5"), fractions("0,0.5,1")
(3, 0.5, (0.0, 0.5, 1.0))
>>> command("train --preset cifar10")
'keras-realnvp train --preset cifar10'
"""

import argparse
import sys

PROGRAM = "keras-realnvp"


def command(rest: str) -> str:
    """The installed command line that does `rest`, for messages: `keras-realnvp REST`.

    Example:

    >>> command("sample --preset embedded_16")
    'keras-realnvp sample --preset embedded_16'
    """
    return f"{PROGRAM} {rest}"


def prog(name: str) -> str:
    """The `prog` of a command's parser, as usage lines and errors show it.

    Example:

    >>> prog("train")
    'keras-realnvp train'
    """
    return f"{PROGRAM} {name}"


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1.

    Example:

    >>> positive_int("4")
    4
    """
    return _integer_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0.

    Example:

    >>> non_negative_int("0")
    0
    """
    return _integer_at_least(text, 0)


def _integer_at_least(text, minimum):
    value = int(text)
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a number >= 0 (NaN is refused).

    Example:

    >>> non_negative_float("0.7")
    0.7
    """
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def floats(text: str) -> tuple:
    """An argparse type: comma-separated numbers.

    Example:

    >>> floats("0.5,1")
    (0.5, 1.0)
    """
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers, got {text!r}") from None


def fractions(text: str) -> tuple:
    """An argparse type: comma-separated numbers in [0, 1].

    Example:

    >>> fractions("0.25,1")
    (0.25, 1.0)
    """
    values = floats(text)
    if not all(0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"fractions must lie in [0, 1], got {text}")
    return values


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows the defaults and keeps the module docstring's layout.

    Example:

    >>> parser = argparse.ArgumentParser(prog=prog("x"), formatter_class=HelpFormatter)
    >>> parser.prog
    'keras-realnvp x'
    """


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose usage errors are one line too: `error: MESSAGE (see PROG --help)`, status 2.

    Example:

    >>> parser = ArgumentParser(prog=prog("x"))
    >>> _ = parser.add_argument("--num", type=positive_int)
    >>> try:
    ...     parser.parse_args(["--num", "0"])
    ... except SystemExit as stop:
    ...     print(stop.code)
    2
    """

    def error(self, message):
        fail(f"{message} (see {self.prog} --help)")


def run_command(run, args):
    """`run(args)`, a command's work; a `ValueError` (bad input) or `ImportError` (a missing
    optional package, whose message names the extra) becomes `fail(error, 2)`.

    On JAX the work runs with the persistent compilation cache
    (`keras_realnvp.backend.compilation_cache`): what an earlier command compiled is loaded.

    Example:

    >>> def missing(args):
    ...     raise ImportError("install keras-realnvp[train]")
    >>> try:
    ...     run_command(missing, None)
    ... except SystemExit as stop:
    ...     print(stop.code)
    2
    """
    from keras_realnvp.backend.compilation_cache import enable_compilation_cache

    enable_compilation_cache()
    try:
        return run(args)
    except (ValueError, ImportError) as error:
        fail(error, 2)


def fail(error, status: int = 2):
    """Print `error: MESSAGE` as one line on stderr and exit with `status` (2: bad usage).

    Example:

    >>> try:
    ...     fail("no such preset", 2)
    ... except SystemExit as stop:
    ...     print(stop.code)
    2
    """
    print("error: " + " ".join(str(error).split()), file=sys.stderr, flush=True)
    raise SystemExit(status)
