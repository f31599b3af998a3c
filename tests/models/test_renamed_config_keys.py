"""Configs written before a setting was renamed still load (keras_realnvp.config_migration).

`condition_dim` is `label_dim` (RealNVP, AffineCoupling, CouplingResNet, CouplingMLP); `units`
and `num_layers` are `filters` and `num_blocks` (RealNVP2D, CouplingMLP). A config under the
old names builds the same model as under the new ones, through `from_config`, Keras'
deserialization and a `.keras` file; the weights load unchanged and give exactly the same
outputs. A config that holds an old name and its new one is refused.
"""

import json
import re
import zipfile

import h5py
import keras
import numpy as np
import pytest
from helpers import randomize_weights, to_numpy

from keras_realnvp import RealNVP, RealNVP2D
from keras_realnvp.bijectors import AffineCoupling
from keras_realnvp.config_migration import LABEL_DIM_RENAMES, VECTOR_NETWORK_RENAMES, rename_old_keys
from keras_realnvp.networks import CouplingResNet
from keras_realnvp.networks.coupling_mlp import CouplingMLP

# Each class, a small instance of it under the current names, and the renames that apply to it.
CASES = {
    "RealNVP": (
        lambda: RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1, label_dim=3, seed=0, name="m"),
        LABEL_DIM_RENAMES,
    ),
    "RealNVP2D": (
        lambda: RealNVP2D(dim=2, num_couplings=2, filters=8, num_blocks=2, seed=0, name="m"), VECTOR_NETWORK_RENAMES
    ),
    "AffineCoupling": (
        lambda: AffineCoupling("checkerboard", filters=4, num_blocks=1, label_dim=3, name="m"), LABEL_DIM_RENAMES
    ),
    "CouplingResNet": (
        lambda: CouplingResNet(filters=4, num_blocks=1, output_channels=6, label_dim=3, name="m"), LABEL_DIM_RENAMES
    ),
    "CouplingMLP": (
        lambda: CouplingMLP(filters=8, num_blocks=2, output_units=4, label_dim=3, name="m"),
        {**LABEL_DIM_RENAMES, **VECTOR_NETWORK_RENAMES},
    ),
}


def _with_old_names(config, renames):
    """`config` as it was written before the renames: every new key back under its old name."""
    old_name = {new: old for old, new in renames.items()}
    old = {old_name.get(key, key): value for key, value in config.items()}
    assert set(renames) <= set(old) and not set(renames.values()) & set(old)  # really the old names
    return old


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_old_config_builds_the_same_object_as_the_new_one(name):
    make, renames = CASES[name]
    current = make().get_config()
    old = _with_old_names(current, renames)
    cls = type(make())
    assert cls.from_config(old).get_config() == current
    # Keras' own deserialization (what load_model does with the registered class) too
    serialized = keras.saving.serialize_keras_object(make())
    serialized["config"] = _with_old_names(serialized["config"], renames)
    assert keras.saving.deserialize_keras_object(serialized).get_config() == current


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_config_with_an_old_name_and_its_new_one_is_refused(name):
    make, renames = CASES[name]
    current = make().get_config()
    both = {**current, **_with_old_names(current, renames)}
    with pytest.raises(ValueError, match=r"both '(\w+)' \(the old name\) and '(\w+)'; keep only '\2'") as error:
        type(make()).from_config(both)
    old, new = re.search(r"both '(\w+)' .* and '(\w+)'", str(error.value)).groups()
    assert renames[old] == new


def test_renaming_keeps_other_keys_and_leaves_the_input_alone():
    config = {"condition_dim": 2, "filters": 4}
    assert rename_old_keys(config, LABEL_DIM_RENAMES) == {"label_dim": 2, "filters": 4}
    assert config == {"condition_dim": 2, "filters": 4}
    assert rename_old_keys({"filters": 4}, LABEL_DIM_RENAMES) == {"filters": 4}
    # the renames of one class do not touch another's keys: RealNVP has no `units`
    assert rename_old_keys({"units": 4}, LABEL_DIM_RENAMES) == {"units": 4}


def _rewrite_keras_config(path, renames):
    """Rewrite the model config inside the `.keras` file at `path` to the old names."""
    with zipfile.ZipFile(path) as archive:
        files = {info.filename: archive.read(info) for info in archive.infolist()}
    config = json.loads(files["config.json"])
    config["config"] = _with_old_names(config["config"], renames)
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for filename, data in files.items():
            archive.writestr(filename, data)


def test_a_conditional_model_saved_under_the_old_name_loads_with_identical_outputs(tmp_path):
    keras.utils.set_random_seed(0)
    model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1, label_dim=2, seed=0)
    randomize_weights(model, seed=3)  # the label projections too: the labels change the outputs
    path = tmp_path / "conditional.keras"
    model.save(path)
    _rewrite_keras_config(path, LABEL_DIM_RENAMES)
    with zipfile.ZipFile(path) as archive:
        assert '"condition_dim": 2' in archive.read("config.json").decode()

    loaded = keras.saving.load_model(path, compile=False)
    assert loaded.get_config() == model.get_config() and loaded.label_dim == 2
    images = np.random.default_rng(1).uniform(0, 256, (4, 8, 8, 3)).astype("float32")
    labels = np.eye(2, dtype="float32")[[0, 1, 1, 0]]
    expected = to_numpy(model.log_prob(images, labels=labels))
    np.testing.assert_array_equal(to_numpy(loaded.log_prob(images, labels=labels)), expected)
    assert np.abs(to_numpy(loaded.log_prob(images, labels=labels[:, ::-1])) - expected).max() > 1e-3
    for got, saved in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, saved)


def test_a_vector_model_saved_under_the_old_names_loads_with_identical_outputs(tmp_path):
    keras.utils.set_random_seed(0)
    model = RealNVP2D(dim=2, num_couplings=4, filters=8, num_blocks=1, seed=0)
    randomize_weights(model, seed=4)
    path = tmp_path / "toy.keras"
    model.save(path)
    _rewrite_keras_config(path, VECTOR_NETWORK_RENAMES)

    loaded = keras.saving.load_model(path, compile=False)
    assert (loaded.filters, loaded.num_blocks) == (8, 1) and loaded.get_config() == model.get_config()
    points = np.random.default_rng(2).normal(size=(5, 2)).astype("float32")
    np.testing.assert_array_equal(to_numpy(loaded.log_prob(points)), to_numpy(model.log_prob(points)))


def test_the_weights_keep_the_paths_that_saved_files_hold(tmp_path):
    # Keras stores weights under the layers' attribute names: the renamed settings must not rename
    # the layers that hold the weights (`condition_projection`, CouplingMLP's `stem`/`hidden`/`head`).
    RealNVP(image_shape=(8, 8, 3), num_scales=1, filters=2, num_blocks=0, label_dim=2).save_weights(
        tmp_path / "image.weights.h5"
    )
    RealNVP2D(num_couplings=2, filters=4, num_blocks=1).save_weights(tmp_path / "vector.weights.h5")
    paths = {}
    for name in ("image", "vector"):
        with h5py.File(tmp_path / f"{name}.weights.h5") as file:
            paths[name] = []
            file.visit(paths[name].append)
    assert "final_flow/bijectors/affine_coupling/net/condition_projection/vars/0" in paths["image"]
    for layer in ("stem", "hidden/dense", "head"):
        assert f"couplings/affine_coupling/net/{layer}/vars/0" in paths["vector"], layer
    conditional_mlp = CouplingMLP(filters=4, num_blocks=1, output_units=4, label_dim=2)
    assert isinstance(conditional_mlp.condition_projection, keras.layers.Dense)
