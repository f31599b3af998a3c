"""The built-in presets: the folders under the repository's `presets/`, shipped as package data."""

from pathlib import Path

from keras_realnvp.hub.preset_folder import read_metadata

_PACKAGE = Path(__file__).resolve().parents[1]
# One folder named `presets`: inside the installed package (a wheel), or beside the package
# in a checkout or an editable install (the repository's top level).
_CANDIDATES = (_PACKAGE / "presets", _PACKAGE.parent / "presets")


def builtin_presets_root() -> Path:
    """The folder that holds one sub-folder per built-in preset.

    Example:

    >>> (builtin_presets_root() / "cifar10" / "config.json").is_file()
    True
    """
    for candidate in _CANDIDATES:
        if candidate.is_dir() and any(candidate.glob("*/config.json")):
            return candidate
    raise FileNotFoundError(
        "The built-in preset files are missing from this installation (looked in "
        + ", ".join(str(c) for c in _CANDIDATES)
        + "). Reinstall keras-realnvp."
    )


def builtin_preset_names() -> list[str]:
    """The names `RealNVP.from_preset` accepts without a path, sorted.

    Example:

    >>> "celeba_64" in builtin_preset_names()
    True
    """
    return sorted(p.parent.name for p in builtin_presets_root().glob("*/config.json"))


def builtin_preset_path(name: str) -> Path:
    """The packaged folder of a built-in preset; a `ValueError` listing the names if unknown.

    Example:

    >>> builtin_preset_path("cifar10").name
    'cifar10'
    """
    names = builtin_preset_names()
    if name not in names:
        raise ValueError(f"Unknown preset {name!r}. Built-in presets: {', '.join(names)}.")
    return builtin_presets_root() / name


def preset_metadata(name: str) -> dict:
    """The `metadata.json` of a built-in preset (dataset, training settings, paper bits/dim).

    Example:

    >>> preset_metadata("cifar10")["paper_bits_per_dim"]
    3.49
    """
    return read_metadata(builtin_preset_path(name))
