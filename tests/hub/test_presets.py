"""Presets: built-in architectures, resolution order, safe loading, clear errors, the Hub cache."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import lay_out_hub_cache, randomize_weights, to_numpy

from keras_realnvp import RealNVP
from keras_realnvp.hub import builtin_preset_names, builtin_preset_path, preset_metadata, read_model_config

PAPER = {  # docs/paper.md §5: scales, hidden maps at the first scale, residual blocks
    "cifar10": ((32, 32, 3), 2, 64, 8, 3.49),
    "imagenet_32": ((32, 32, 3), 4, 32, 4, 4.28),
    "imagenet_64": ((64, 64, 3), 5, 32, 2, 3.98),
    "lsun_bedroom": ((64, 64, 3), 5, 32, 2, 2.72),
    "lsun_tower": ((64, 64, 3), 5, 32, 2, 2.81),
    "lsun_church_outdoor": ((64, 64, 3), 5, 32, 2, 3.08),
    "celeba_64": ((64, 64, 3), 5, 32, 2, 3.02),
}


def test_every_paper_dataset_has_a_preset():
    assert set(PAPER) | {"embedded_16", "celeba_64_conditional"} == set(builtin_preset_names())
    assert set(RealNVP.presets) == set(builtin_preset_names())


def test_conditional_celeba_preset_is_celeba_64_conditioned_on_the_40_attributes():
    # Built at full size, as the paper presets above: the celeba_64 structure plus a label projection
    # of 40 -> hidden maps in every s/t network.
    model = RealNVP.from_preset("celeba_64_conditional", load_weights=False)
    plain = preset_metadata("celeba_64")
    metadata = preset_metadata("celeba_64_conditional")
    assert (model.image_shape, model.num_scales, model.filters, model.num_blocks) == ((64, 64, 3), 5, 32, 2)
    assert model.label_dim == 40 and metadata["parameter_count"] == model.count_params()
    # Each coupling's s/t network projects the 40 attributes (weights and bias) to its hidden maps:
    # 3 checkerboard couplings of 32 * 2^i maps and 3 channel ones of twice that at scales 0-3,
    # then 4 couplings of 512 maps.
    widths = 3 * sum(32 * 2**i for i in range(4)) + 3 * sum(64 * 2**i for i in range(4)) + 4 * 512
    assert model.count_params() - plain["parameter_count"] == 41 * widths
    labels = metadata["dataset"]["label_columns"]
    assert len(labels) == len(set(labels)) == 40 and {"Smiling", "Male", "Young", "Eyeglasses"} <= set(labels)
    same = ("hub_id", "image_column", "train_split", "eval_split", "preprocessing", "flips")
    assert {k: metadata["dataset"][k] for k in same} == {k: plain["dataset"][k] for k in same}
    assert metadata["training"] == plain["training"] and metadata["weights"]["published"] is False


@pytest.mark.parametrize("name", sorted(PAPER))
def test_builtin_preset_builds_with_the_papers_structure(name):
    image_shape, scales, filters, blocks, paper_bpd = PAPER[name]
    model = RealNVP.from_preset(name, load_weights=False)
    assert (model.image_shape, model.num_scales, model.filters, model.num_blocks) == (
        image_shape, scales, filters, blocks,
    )
    # 3 checkerboard + 3 channel couplings per scale, 4 checkerboard at the last; widths double.
    assert [len(c.bijectors) // 2 for c in model.checkerboard_flows] == [3] * (scales - 1)
    assert [len(c.bijectors) // 2 for c in model.channel_flows] == [3] * (scales - 1)
    assert len(model.final_flow.bijectors) // 2 == 4
    widths = [c.bijectors[0].filters for c in model.checkerboard_flows] + [model.final_flow.bijectors[0].filters]
    assert widths == [filters * 2**i for i in range(scales)]
    assert [c.bijectors[0].filters for c in model.channel_flows] == [2 * filters * 2**i for i in range(scales - 1)]
    assert all(c.bijectors[0].net.num_blocks == blocks for c in model.channel_flows + [model.final_flow])
    assert model.latent_shapes()[-1][:2] == (image_shape[0] // 2 ** (scales - 1),) * 2
    metadata = preset_metadata(name)
    assert metadata["paper_bits_per_dim"] == paper_bpd
    assert metadata["parameter_count"] == model.count_params()
    assert metadata["training"]["batch_size"] == 64


def test_unpublished_weights_say_how_to_get_the_architecture():
    with pytest.raises(ValueError,
                       match=r"not published yet.*load_weights=False.*keras-realnvp train --preset celeba_64"):
        RealNVP.from_preset("celeba_64")


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(ValueError, match=r"Unknown preset 'celeb_64'.*celeba_64.*cifar10"):
        RealNVP.from_preset("celeb_64")
    with pytest.raises(ValueError, match=r"no preset folder at './nowhere'"):
        RealNVP.from_preset("./nowhere")


def _tiny(seed=0):
    model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1, seed=seed)
    randomize_weights(model, seed=seed)
    return model


def test_save_to_preset_round_trip(tmp_path, rng):
    model = _tiny()
    x = rng.uniform(0, 256, (3, 8, 8, 3)).astype("float32")
    folder = model.save_to_preset(tmp_path / "p", {"dataset": {"name": "test"}})
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["backend"] == keras.backend.backend() and metadata["dataset"] == {"name": "test"}
    loaded = RealNVP.from_preset(str(folder))
    np.testing.assert_array_equal(to_numpy(loaded.bits_per_dim(x)), to_numpy(model.bits_per_dim(x)))
    assert RealNVP.from_preset(folder, image_shape=(16, 8, 3)).image_shape == (16, 8, 3)


def test_a_local_folder_is_never_shadowed_by_a_builtin_name(tmp_path, monkeypatch):
    _tiny().save_to_preset(tmp_path / "cifar10")
    monkeypatch.chdir(tmp_path)
    assert RealNVP.from_preset("cifar10").filters == 4  # the local folder, not the built-in (64)


def test_missing_and_corrupt_weights_are_clear_errors(tmp_path):
    folder = _tiny().save_to_preset(tmp_path / "p")
    weights = folder / "model.weights.h5"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match=r"Cannot read the weights in .*model.weights.h5.*corrupt, truncated"):
        RealNVP.from_preset(str(folder))
    weights.write_bytes(b"not an h5 file at all")
    with pytest.raises(ValueError, match=r"Cannot read the weights"):
        RealNVP.from_preset(str(folder))
    weights.unlink()
    with pytest.raises(ValueError, match=r"has no weights file model.weights.h5.*load_weights=False"):
        RealNVP.from_preset(str(folder))
    assert RealNVP.from_preset(str(folder), load_weights=False).filters == 4


def test_configs_from_other_versions_or_other_classes_are_refused(tmp_path):
    folder = _tiny().save_to_preset(tmp_path / "p")
    config_path = folder / "config.json"
    original = json.loads(config_path.read_text())

    config = json.loads(json.dumps(original))
    config["config"]["coupling_type"] = "additive"
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"does not know: coupling_type.*incompatible version"):
        RealNVP.from_preset(str(folder))

    config = json.loads(json.dumps(original))
    config.update(class_name="Lambda", module="keras.layers", registered_name=None)
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"describes class 'Lambda'.*only keras_realnvp's RealNVP"):
        RealNVP.from_preset(str(folder))

    config_path.write_text("{ not json")
    with pytest.raises(ValueError, match=r"Cannot read .*config.json"):
        RealNVP.from_preset(str(folder))

    config_path.write_text(json.dumps(original))
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["format_version"] = 99
    (folder / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match=r"format version 99"):
        RealNVP.from_preset(str(folder))


def _rename_in_config(folder, old, new):
    """Store `folder/config.json`'s argument `old` under the name `new` (only the key changes)."""
    path = folder / "config.json"
    text = path.read_text()
    assert text.count(f'"{old}"') == 1
    path.write_text(text.replace(f'"{old}"', f'"{new}"'))


def test_a_conditional_preset_written_with_condition_dim_loads_with_identical_outputs(tmp_path, rng):
    model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1, label_dim=2, seed=0)
    randomize_weights(model, seed=5)
    folder = model.save_to_preset(tmp_path / "p")
    _rename_in_config(folder, "label_dim", "condition_dim")  # a preset written before the rename
    assert read_model_config(folder, RealNVP)["label_dim"] == 2
    loaded = RealNVP.from_preset(str(folder))
    assert loaded.get_config() == model.get_config()
    x = rng.uniform(0, 256, (4, 8, 8, 3)).astype("float32")
    labels = np.eye(2, dtype="float32")[[0, 1, 1, 0]]
    expected = to_numpy(model.log_prob(x, labels=labels))
    np.testing.assert_array_equal(to_numpy(loaded.log_prob(x, labels=labels)), expected)


def test_the_embedded_preset_with_its_old_config_loads_its_weights_unchanged(tmp_path, rng):
    folder = Path(shutil.copytree(builtin_preset_path("embedded_16"), tmp_path / "embedded_16"))
    _rename_in_config(folder, "label_dim", "condition_dim")
    builtin, old = RealNVP.from_preset("embedded_16"), RealNVP.from_preset(str(folder))
    assert old.get_config() == builtin.get_config() and old.label_dim is None
    x = rng.uniform(0, 256, (2, 16, 16, 3)).astype("float32")
    np.testing.assert_array_equal(to_numpy(old.log_prob(x)), to_numpy(builtin.log_prob(x)))


def test_a_preset_config_with_both_condition_dim_and_label_dim_is_refused(tmp_path):
    folder = _tiny().save_to_preset(tmp_path / "p")
    config = json.loads((folder / "config.json").read_text())
    config["config"]["condition_dim"] = 3
    (folder / "config.json").write_text(json.dumps(config))
    message = r"config.json: the config has both 'condition_dim' \(the old name\) and 'label_dim'"
    with pytest.raises(ValueError, match=message):
        RealNVP.from_preset(str(folder))


HUB_LOADER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    from keras_realnvp import RealNVP
    model = RealNVP.from_preset(sys.argv[1])
    x = np.load(sys.argv[2])
    print(json.dumps(keras.ops.convert_to_numpy(model.bits_per_dim(x)).tolist()))
    """
)


def load_from_hub_cache_offline(handle, cache, x_path):
    """`from_preset(handle)` in a fresh process with HF_HUB_OFFLINE=1 and the given cache."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    result = subprocess.run(
        [sys.executable, "-c", HUB_LOADER, handle, str(x_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return np.array(json.loads(result.stdout.strip().splitlines()[-1]))


def test_hf_handle_loads_from_the_hub_cache_offline(tmp_path, rng):
    model = _tiny()
    folder = model.save_to_preset(tmp_path / "p")
    lay_out_hub_cache(folder, tmp_path / "hub", "someone/tiny-realnvp")
    x = rng.uniform(0, 256, (2, 8, 8, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    got = load_from_hub_cache_offline("hf://someone/tiny-realnvp", tmp_path / "hub", tmp_path / "x.npy")
    np.testing.assert_allclose(got, to_numpy(model.bits_per_dim(x)), atol=1e-6)


def test_hf_handle_not_in_the_cache_offline_is_a_clear_error(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty")}
    code = "from keras_realnvp import RealNVP; RealNVP.from_preset('hf://nobody/nothing')"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "ValueError: Cannot download config.json of hf://nobody/nothing (HF_HUB_OFFLINE is set" in result.stderr
