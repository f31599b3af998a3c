"""`Preset`: a preset resolved and read once (folder, checked config, metadata), and the model it builds."""

import dataclasses
import os
from pathlib import Path
from typing import Any

from keras_realnvp.hub.preset_folder import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    load_weights_file,
    read_metadata,
    read_model_config,
)
from keras_realnvp.hub.resolve import resolve_preset


@dataclasses.dataclass(frozen=True)
class Preset:
    """A preset, read once: its local `folder`, its checked model `config`, its `metadata`.

    `Preset.open` resolves a handle (a local folder, a built-in name, `hf://owner/repo`),
    reads `metadata.json` (with its format-version check) and `config.json` (checked
    against `model_class`, which is an argument: this package never imports the models).
    `build` makes the model. The trainer and the commands read the dataset settings and
    the training record from `metadata`, never from the model.

    Example:

    >>> from keras_realnvp import RealNVP
    >>> preset = Preset.open("cifar10", RealNVP, need_weights=False)
    >>> preset.folder.name, preset.config["num_blocks"], preset.dataset["name"]
    ('cifar10', 8, 'CIFAR-10')
    >>> model = preset.build(load_weights=False, filters=4, num_blocks=1)
    >>> model.num_scales, model.filters
    (2, 4)
    """

    folder: Path
    config: dict
    metadata: dict
    model_class: type

    @classmethod
    def open(cls, handle: str | os.PathLike, model_class: type, need_weights: bool = True) -> "Preset":
        """Resolve `handle` to a local folder and read its metadata and config once.

        `need_weights=False` accepts a built-in preset whose weights are not published
        (for the untrained architecture). Every problem is a `ValueError` naming the file.
        """
        folder = resolve_preset(handle, need_weights=need_weights)
        metadata = read_metadata(folder)
        return cls(folder, read_model_config(folder, model_class), metadata, model_class)

    @property
    def dataset(self) -> dict:
        """The preset's `dataset` settings (name, Hub id, columns, splits, preprocessing), or `{}`."""
        return dict(self.metadata.get("dataset", {}))

    @property
    def trained(self) -> dict:
        """What training recorded (`keras-realnvp train`'s `trained` entry), or `{}` for a config-only preset."""
        return dict(self.metadata.get("trained", {}))

    def build(self, load_weights: bool = True, **overrides) -> Any:
        """The model, with the preset's weights unless `load_weights=False`.

        `overrides` replace entries of the stored configuration (for example `image_shape`
        for sampling at another size, or `seed`); they are checked against the size limits
        again, the error naming the file they change.
        """
        arguments = dict(self.config)
        if overrides:
            changes = ", ".join(f"{key}={value!r:.100}" for key, value in overrides.items())
            self.model_class.check_config_size(
                {**arguments, **overrides}, where=f"{self.folder / CONFIG_FILE} with the overrides {changes}"
            )
        arguments.update(overrides)
        model = self.model_class(**arguments)
        if load_weights:
            load_weights_file(model, self.folder / WEIGHTS_FILE)
        return model
