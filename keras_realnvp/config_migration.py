"""Configs written before a setting was renamed: the old names, and the one function that renames them.

A setting has one name across the package. Configs stored under an older name (a preset's
`config.json`, a `.keras` file, a run's `run.json`) still load: each model and layer
class lists the renames that apply to it, `from_config` and
`keras_realnvp.hub.read_model_config` apply them with `rename_old_keys`, and the rest of
the package sees only the current names. The weights are unaffected (their paths follow
the layers' attribute names, which did not change).

- `LABEL_DIM_RENAMES`: the length of the label vector a conditional flow takes, once
  `condition_dim`, is `label_dim` (`RealNVP`, `AffineCoupling`, `CouplingResNet`,
  `CouplingMLP`).
- `VECTOR_NETWORK_RENAMES`: the width and depth of a vector model's s/t network, once
  `units` and `num_layers`, are `filters` and `num_blocks`, as for images (`RealNVP2D`;
  `CouplingMLP` has both tables).

This module imports nothing from the package, so that every layer of it can use it.
"""

LABEL_DIM_RENAMES = {"condition_dim": "label_dim"}
VECTOR_NETWORK_RENAMES = {"units": "filters", "num_layers": "num_blocks"}


def rename_old_keys(config: dict, renames: dict, where=None) -> dict:
    """A copy of `config` with each old key of `renames` (`{old: new}`) under its new name.

    Keys that are not old names are kept as they are; a config without old keys comes back
    equal. A config holding both an old key and its new one is ambiguous and is refused
    (`where`, e.g. a file, starts the message).

    Example:

    >>> rename_old_keys({"filters": 4, "condition_dim": 2}, LABEL_DIM_RENAMES)
    {'filters': 4, 'label_dim': 2}
    >>> rename_old_keys({"units": 8, "num_layers": 1, "dim": 2}, VECTOR_NETWORK_RENAMES)
    {'filters': 8, 'num_blocks': 1, 'dim': 2}
    >>> rename_old_keys({"condition_dim": 2, "label_dim": 3}, LABEL_DIM_RENAMES, where="config.json")
    Traceback (most recent call last):
    ...
    ValueError: config.json: the config has both 'condition_dim' (the old name) and 'label_dim'; keep only 'label_dim'.
    """
    prefix = "" if where is None else f"{where}: "
    renamed = {}
    for key, value in config.items():
        new = renames.get(key)
        if new is None:
            renamed[key] = value
            continue
        if new in config:
            raise ValueError(
                f"{prefix}the config has both {key!r} (the old name) and {new!r}; keep only {new!r}."
            )
        renamed[new] = value
    return renamed
