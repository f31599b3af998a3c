"""Opening, saving and publishing presets (built-in, local folders, Hub repos), as KerasHub does.

A preset is a folder (`config.json`, `metadata.json`, optional weights); the built-in ones
live in the repository's `presets/`. This package reads and writes them and never imports
the models: `Preset.open(handle, RealNVP)` takes the class.
"""

from keras_realnvp.hub.preset import Preset
from keras_realnvp.hub.preset_folder import (
    CONFIG_FILE,
    METADATA_FILE,
    WEIGHTS_FILE,
    read_metadata,
    read_model_config,
    save_preset,
)
from keras_realnvp.hub.registry import builtin_preset_names, builtin_preset_path, preset_metadata
from keras_realnvp.hub.resolve import resolve_preset

__all__ = [
    "Preset",
    "CONFIG_FILE",
    "METADATA_FILE",
    "WEIGHTS_FILE",
    "builtin_preset_names",
    "builtin_preset_path",
    "preset_metadata",
    "read_metadata",
    "read_model_config",
    "resolve_preset",
    "save_preset",
]
