"""Presets: built-in configurations for the paper's datasets, local folders and Hub repos."""

from keras_realnvp.presets.preset import Preset
from keras_realnvp.presets.preset_folder import (
    CONFIG_FILE,
    METADATA_FILE,
    WEIGHTS_FILE,
    read_metadata,
    read_model_config,
    save_preset,
)
from keras_realnvp.presets.registry import builtin_preset_names, builtin_preset_path, preset_metadata
from keras_realnvp.presets.resolve import resolve_preset

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
