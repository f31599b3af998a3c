"""Size limits: the closed-form sizes are the built models' sizes, and oversized settings are refused unbuilt."""

import json
import math
import re

import numpy as np
import pytest
from keras import ops

import keras_realnvp.models.realnvp as realnvp_module
import keras_realnvp.models.toy2d as toy2d_module
import keras_realnvp.networks.coupling_resnet as coupling_resnet
from keras_realnvp import RealNVP
from keras_realnvp.hub.preset_folder import FORMAT_VERSION
from keras_realnvp.models import size_limits
from keras_realnvp.models.size_limits import (
    MAX_PARAMETERS,
    SEED_LIMIT,
    activation_count,
    check_model_size,
    check_toy_model_size,
    parameter_count,
)
from keras_realnvp.models.toy2d import RealNVP2D
from keras_realnvp.networks.weight_norm_conv import WeightNormConv2D

# (image_shape, num_scales, filters, num_blocks, label_dim): tiny, but every layout case:
# one to three scales, no residual block, odd and even channels, conditional or not.
SMALL_CONFIGS = [
    ((4, 4, 1), 1, 2, 0, None),
    ((8, 8, 3), 1, 3, 1, 4),
    ((8, 8, 1), 2, 4, 1, None),
    ((8, 16, 2), 2, 3, 2, 3),
    ((16, 16, 3), 3, 2, 1, None),
    ((16, 8, 1), 3, 2, 0, 2),
]


@pytest.mark.parametrize("config", SMALL_CONFIGS, ids=str)
def test_closed_form_parameter_count_is_the_models(config):
    image_shape, num_scales, filters, num_blocks, label_dim = config
    expected = parameter_count(image_shape, num_scales, filters, num_blocks, label_dim)
    for bn_mode in ("running_average", "batch"):  # bn_mode adds no weights
        model = RealNVP(
            image_shape=image_shape,
            num_scales=num_scales,
            filters=filters,
            num_blocks=num_blocks,
            label_dim=label_dim,
            bn_mode=bn_mode,
        )
        assert model.count_params() == expected
    assert check_model_size(image_shape, num_scales, filters, num_blocks, label_dim).parameters == expected


@pytest.mark.parametrize("config", SMALL_CONFIGS[:5], ids=str)
def test_closed_form_activation_count_is_what_the_networks_output(config, monkeypatch):
    # Count the values every convolution and batch-norm-ReLU step of the s/t networks
    # actually outputs in one forward pass: activation_count must be exactly that per image.
    image_shape, num_scales, filters, num_blocks, _ = config
    model = RealNVP(image_shape=image_shape, num_scales=num_scales, filters=filters, num_blocks=num_blocks)
    counted = []
    convolve, batch_norm_relu = WeightNormConv2D.convolve, coupling_resnet.batch_norm_relu

    def counting_convolve(self, x, kernel=None):
        y = convolve(self, x, kernel)
        counted.append(math.prod(y.shape))
        return y

    def counting_batch_norm_relu(*args, **kwargs):
        y = batch_norm_relu(*args, **kwargs)
        counted.append(math.prod(y.shape))
        return y

    monkeypatch.setattr(WeightNormConv2D, "convolve", counting_convolve)
    monkeypatch.setattr(coupling_resnet, "batch_norm_relu", counting_batch_norm_relu)
    batch = 2
    model.forward_flow(ops.convert_to_tensor(np.full((batch, *image_shape), 100.5, "float32")))
    assert sum(counted) == batch * activation_count(image_shape, num_scales, filters, num_blocks)


def test_activation_count_is_proportional_to_the_pixels():
    small = activation_count((32, 32, 3), 3, 8, 2)
    assert activation_count((64, 32, 3), 3, 8, 2) == 2 * small
    assert activation_count((128, 128, 3), 3, 8, 2) == 16 * small


@pytest.mark.parametrize(
    "config",
    [
        (2, 2, 1, 0, "checkerboard"),
        (2, 6, 64, 1, "checkerboard"),
        (4, 3, 8, 2, "channel"),
        (5, 2, 3, 1, "checkerboard"),
    ],
    ids=str,
)
def test_closed_form_toy_parameter_count_is_the_models(config):
    dim, num_couplings, filters, num_blocks, mask_type = config
    model = RealNVP2D(dim=dim, num_couplings=num_couplings, filters=filters, num_blocks=num_blocks, mask_type=mask_type)
    assert model.count_params() == check_toy_model_size(dim, num_couplings, filters, num_blocks, mask_type).parameters


# The four configurations that were observed to fail: (arguments, patterns the message must contain).
OVERSIZED = {
    # Built for more than 90 s before this check.
    "num_blocks": (
        {"image_shape": [32, 32, 3], "num_blocks": 100000},
        [
            r"num_blocks=100000 gives 1,000,000 residual blocks",
            r"limit of 4,096 \(keras_realnvp\.models\.size_limits\.MAX_NETWORK_BLOCKS\)",
            r"num_blocks can be at most 409\b",
        ],
    ),
    # RuntimeError: tried to allocate 4000000000000 bytes.
    "filters": (
        {"image_shape": [32, 32, 3], "filters": 1000000},
        [
            r"filters=1000000 gives [\d,]+ parameters, more than the limit of 2,000,000,000 "
            r"\(keras_realnvp\.models\.size_limits\.MAX_PARAMETERS\)",
            r"filters can be at most 649\b",
        ],
    ),
    # Hung.
    "image_shape": (
        {"image_shape": [2**20, 2**20, 3], "num_scales": 20},
        [
            r"num_scales=20 gives [\d,]+ parameters, more than the limit of 2,000,000,000",
            r"image_shape=\(1048576, 1048576, 3\).* activation values per image, more than the limit of "
            r"68,719,476,736 \(keras_realnvp\.models\.size_limits\.MAX_ACTIVATIONS\)",
        ],
    ),
    # ValueError: Overflow when unpacking long long (PyTorch).
    "seed": (
        {"image_shape": [8, 8, 1], "num_scales": 2, "filters": 4, "num_blocks": 1, "seed": 2**80},
        [r"seed must be None or an integer in \[0, 2147483647\)", r"got 1208925819614629174706176"],
    ),
}


@pytest.fixture
def nothing_is_built(monkeypatch):
    """Fail the test if a coupling layer is created: refusals must come before building."""

    def refuse(*args, **kwargs):
        raise AssertionError("a layer was built before the settings were refused")

    monkeypatch.setattr(realnvp_module, "AffineCoupling", refuse)
    monkeypatch.setattr(toy2d_module, "AffineCoupling", refuse)


def _assert_message(error, patterns):
    for pattern in patterns:
        assert re.search(pattern, str(error)), f"{pattern!r} not in {str(error)!r}"


@pytest.mark.parametrize("case", sorted(OVERSIZED))
def test_oversized_constructor_arguments_are_refused_unbuilt(case, nothing_is_built):
    arguments, patterns = OVERSIZED[case]
    with pytest.raises(ValueError) as error:
        RealNVP(**arguments)
    _assert_message(error.value, patterns)


def _write_preset(folder, **arguments):
    config = {
        "module": "keras_realnvp.models.realnvp",
        "class_name": "RealNVP",
        "config": {"name": "oversized", "trainable": True, "dtype": "float32", **arguments},
        "registered_name": "keras_realnvp>RealNVP",
    }
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "metadata.json").write_text(json.dumps({"format_version": FORMAT_VERSION}))
    return folder


@pytest.mark.parametrize("case", sorted(OVERSIZED))
def test_oversized_preset_configs_are_refused_unbuilt_naming_the_file(case, tmp_path, nothing_is_built):
    arguments, patterns = OVERSIZED[case]
    folder = _write_preset(tmp_path / "preset", **arguments)
    with pytest.raises(ValueError) as error:
        RealNVP.from_preset(str(folder), load_weights=False)
    _assert_message(error.value, [re.escape(str(folder / "config.json")) + ": ", *patterns])


def test_oversized_preset_overrides_are_refused_naming_the_file(tmp_path, nothing_is_built):
    folder = _write_preset(tmp_path / "preset", image_shape=[8, 8, 1], num_scales=2, filters=4, num_blocks=1)
    with pytest.raises(ValueError) as error:
        RealNVP.from_preset(str(folder), load_weights=False, filters=1000000)
    path = re.escape(str(folder / "config.json"))
    patterns = [f"{path} with the overrides filters=1000000: filters=1000000 gives", "MAX_PARAMETERS"]
    _assert_message(error.value, patterns)


def test_a_preset_config_without_image_shape_is_refused(tmp_path):
    folder = _write_preset(tmp_path / "preset", num_scales=2)
    with pytest.raises(ValueError, match=r"config\.json has no 'image_shape' argument"):
        RealNVP.from_preset(str(folder), load_weights=False)


def test_the_largest_value_named_is_the_largest_that_fits():
    with pytest.raises(ValueError) as error:
        check_model_size((32, 32, 3), 2, 1000000, 8)
    most = int(re.search(r"filters can be at most ([\d,]+)", str(error.value)).group(1).replace(",", ""))
    assert parameter_count((32, 32, 3), 2, most, 8) <= MAX_PARAMETERS < parameter_count((32, 32, 3), 2, most + 1, 8)
    check_model_size((32, 32, 3), 2, most, 8)  # and it is accepted


def test_limits_can_be_raised_or_lowered(monkeypatch):
    small = parameter_count((8, 8, 1), 2, 4, 1)
    monkeypatch.setattr(size_limits, "MAX_PARAMETERS", small - 1)
    with pytest.raises(ValueError, match=f"more than the limit of {small - 1:,}"):
        RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
    monkeypatch.setattr(size_limits, "MAX_PARAMETERS", small)
    assert RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1).count_params() == small


def test_num_scales_is_bounded_by_the_image_size(nothing_is_built):
    for num_scales in (7, 10**12):  # 2^(10^12) is never computed
        message = rf"num_scales={num_scales} needs .*image_shape \(64, 64, 3\) allows num_scales <= 6"
        with pytest.raises(ValueError, match=message):
            RealNVP(image_shape=(64, 64, 3), num_scales=num_scales)


def test_the_seed_range_is_what_every_backend_takes():
    # The largest seed allowed works, including the model's own seed + 1 for sampling.
    seed = SEED_LIMIT - 1
    model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=2, num_blocks=0, seed=seed)
    draws = [np.asarray(ops.convert_to_numpy(z)) for z in model.sample_latents(1)]
    again = [np.asarray(ops.convert_to_numpy(z)) for z in model.sample_latents(1, seed=seed)]
    assert all(np.all(np.isfinite(z)) for z in draws + again)
    for bad in (-1, SEED_LIMIT, 2**63, 2**80):
        with pytest.raises(ValueError, match=r"seed must be None or an integer in \[0, 2147483647\)"):
            RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=2, num_blocks=0, seed=bad)
        with pytest.raises(ValueError, match=r"seed must be None or an integer in \[0, 2147483647\)"):
            model.sample_latents(1, seed=bad)


BAD_TYPES = {
    "image_shape": [(8, 8), (8, 8.0, 1), (8, 8, True), "881", (0, 8, 1), None],
    "num_scales": [True, 2.0, "2", 0, None],
    "filters": [4.0, "4", True, 0],
    "num_blocks": [1.5, "1", -1, False],
    "label_dim": [0, 2.5, "3", True],
    "seed": [1.5, "3", True, [1]],
}


@pytest.mark.parametrize("name, value", [(n, v) for n, values in BAD_TYPES.items() for v in values], ids=str)
def test_settings_of_the_wrong_type_are_refused_by_name(name, value, nothing_is_built):
    arguments = {"image_shape": (8, 8, 1), "num_scales": 2, "filters": 4, "num_blocks": 1, name: value}
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        RealNVP(**arguments)


def test_numpy_integers_are_taken_as_python_ints():
    model = RealNVP(
        image_shape=np.array([8, 8, 1]),
        num_scales=np.int64(2),
        filters=np.int32(4),
        num_blocks=np.int64(1),
        label_dim=np.int16(3),
        seed=np.uint32(5),
    )
    config = model.get_config()
    for name in ("num_scales", "filters", "num_blocks", "label_dim", "seed"):
        assert type(config[name]) is int
    assert model.image_shape == (8, 8, 1) and all(type(d) is int for d in model.image_shape)
    json.dumps(config)  # a preset's config.json can hold it


@pytest.mark.parametrize(
    "arguments, patterns",
    [
        (
            {"num_couplings": 10**6},
            [r"num_couplings=1000000 and num_blocks=1 give 2,000,000 hidden layers", "MAX_NETWORK_BLOCKS"],
        ),
        ({"filters": 10**6}, [r"filters=1000000 gives [\d,]+ parameters", r"filters can be at most 18,253\b"]),
        ({"dim": 10**9}, [r"dim=1000000000 gives [\d,]+ parameters", "MAX_PARAMETERS"]),
        ({"seed": 2**80}, [r"seed must be None or an integer in \[0, 2147483647\)"]),
        ({"filters": 8.0}, [r"^filters must be a positive integer, got 8\.0\."]),
        ({"num_blocks": True}, [r"^num_blocks must be an integer >= 0, got True\."]),
        ({"dim": "2"}, [r"^dim must be an integer >= 2, got '2'\."]),
        ({"dim": 1}, [r"dim must be at least 2 \(a coupling needs two parts\)"]),
        ({"num_couplings": 1}, [r"num_couplings must be at least 2 so that every feature is transformed"]),
    ],
    ids=str,
)
def test_toy_model_settings_are_checked_unbuilt(arguments, patterns, nothing_is_built):
    with pytest.raises(ValueError) as error:
        RealNVP2D(**arguments)
    _assert_message(error.value, patterns)
