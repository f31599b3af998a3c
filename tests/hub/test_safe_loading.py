"""`from_preset` never runs code from a preset folder or Hub repo.

Each crafted preset below carries a payload that, if anything executed it, would create a
marker file; loading must raise a `ValueError` that names the problem, and the marker
must not exist afterwards. Where it is cheap, a control shows the payload is live: run
the way an unsafe loader would run it, it does create its own marker.
"""

import json
import pickle
import shutil
from pathlib import Path

import keras
import pytest

from keras_realnvp import RealNVP
from keras_realnvp.hub import read_model_config


@pytest.fixture(scope="module")
def clean_preset(tmp_path_factory):
    model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1)
    return model.save_to_preset(tmp_path_factory.mktemp("clean") / "preset")


@pytest.fixture
def folder(clean_preset, tmp_path):
    return Path(shutil.copytree(clean_preset, tmp_path / "preset"))


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "a payload from the preset was executed"


class _TouchOnUnpickle:
    """Unpickling this creates `path` (what a malicious pickle would do, harmlessly)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def _lambda_config(marker_path):
    """A serialized `keras.layers.Lambda` whose marshalled function creates `marker_path`."""
    path = str(marker_path)
    layer = keras.layers.Lambda(lambda x: (__import__("pathlib").Path(path).touch(), x)[1])
    return keras.saving.serialize_keras_object(layer)


def _write_config(folder, change):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


def _refused(folder, message, load_weights=False):
    with pytest.raises(ValueError, match=message):
        RealNVP.from_preset(str(folder), load_weights=load_weights)


def test_the_lambda_payload_is_live_under_an_unsafe_loader(tmp_path):
    control = tmp_path / "control"
    layer = keras.saving.deserialize_keras_object(_lambda_config(control), safe_mode=False)
    layer(keras.ops.zeros((1, 2)))
    assert control.exists()


def test_the_pickle_payload_is_live_under_an_unsafe_loader(tmp_path):
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_TouchOnUnpickle(control)))
    assert control.exists()


MALICIOUS_MODELS = {
    "unknown_class": lambda m: {"module": "evil", "class_name": "Backdoor", "config": {}, "registered_name": None},
    "os_system": lambda m: {
        "module": "os", "class_name": "system", "config": {"command": f"touch {m}"}, "registered_name": "os>system",
    },
    "builtins_eval": lambda m: {
        "module": "builtins", "class_name": "eval",
        "config": f"__import__('pathlib').Path({str(m)!r}).touch()", "registered_name": None,
    },
    "keras_lambda": lambda m: _lambda_config(m),
    "realnvp_from_another_module": lambda m: {
        "module": "os", "class_name": "RealNVP", "config": {"image_shape": [8, 8, 3]},
        "registered_name": "keras_realnvp>RealNVP",
    },
    "registered_as_something_else": lambda m: {
        "module": "keras_realnvp.models.realnvp", "class_name": "RealNVP", "config": {"image_shape": [8, 8, 3]},
        "registered_name": "builtins>eval",
    },
}


@pytest.mark.parametrize("case", sorted(MALICIOUS_MODELS))
def test_configs_of_other_classes_are_refused(folder, marker, case):
    (folder / "config.json").write_text(json.dumps(MALICIOUS_MODELS[case](marker)))
    _refused(folder, r"config.json describes class .*only keras_realnvp's RealNVP can be loaded")
    _refused(folder, r"config.json describes class", load_weights=True)


def _nest(marker, key, wrap=lambda payload: payload):
    def change(config):
        config["config"][key] = wrap(_lambda_config(marker))

    return change


NESTED = {
    # An object where a plain argument belongs: never deserialized, refused by type.
    "filters_is_a_lambda": (lambda m: _nest(m, "filters"), r"argument 'filters' must be an integer >= 1"),
    "seed_is_a_lambda": (lambda m: _nest(m, "seed"), r"argument 'seed' must be null or an integer"),
    "name_is_a_lambda": (lambda m: _nest(m, "name"), r"argument 'name' must be a string"),
    "lambda_inside_image_shape": (
        lambda m: _nest(m, "image_shape", lambda p: [8, 8, p]), r"argument 'image_shape' must be a list of 3"
    ),
    "lambda_inside_label_dim": (
        lambda m: _nest(m, "label_dim", lambda p: [p]), r"argument 'label_dim' must be null or an integer"
    ),
    "dtype_policy_is_a_lambda": (lambda m: _nest(m, "dtype"), r"unsupported dtype entry"),
    "dtype_policy_with_a_lambda_config": (
        lambda m: _nest(m, "dtype", lambda p: {"class_name": "DTypePolicy", "config": {"name": "float32", "x": p}}),
        r"unsupported dtype entry",
    ),
    "dtype_names_a_function": (lambda m: lambda c: c["config"].update(dtype="os.system"), r"unsupported dtype"),
    "dunder_class_argument": (
        lambda m: lambda c: c["config"].update(__class__="os.system"), r"does not know: __class__"
    ),
    "dunder_reduce_argument": (
        lambda m: lambda c: c["config"].update(__reduce__=["os.system", f"touch {m}"]), r"does not know: __reduce__"
    ),
    "dunder_class_at_the_top": (
        lambda m: lambda c: c.update(__class__={"module": "os", "class_name": "system"}),
        r"unexpected top-level entries: '__class__'",
    ),
    "shared_object_trick": (
        lambda m: lambda c: c.update(shared_object_id=1, **{"__lambda__": _lambda_config(m)}),
        r"unexpected top-level entries",
    ),
    "bool_for_an_integer": (lambda m: lambda c: c["config"].update(num_scales=True), r"'num_scales' must be an int"),
    "string_for_an_integer": (lambda m: lambda c: c["config"].update(filters="4"), r"'filters' must be an int"),
    "nan_alpha": (lambda m: lambda c: c["config"].update(alpha=float("nan")), r"'alpha' must be a finite number"),
    "arguments_not_an_object": (lambda m: lambda c: c.update(config=["filters", 4]), r"no 'config' object"),
}


@pytest.mark.parametrize("case", sorted(NESTED))
def test_objects_and_tricks_inside_the_arguments_are_refused(folder, marker, case):
    change, message = NESTED[case]
    _write_config(folder, change(marker))
    _refused(folder, message)


def test_the_checked_arguments_are_exactly_the_constructors(clean_preset):
    arguments = read_model_config(clean_preset, RealNVP)
    assert arguments["image_shape"] == [8, 8, 3] and arguments["dtype"] == "float32"
    assert all(isinstance(v, (int, float, str, list, type(None))) for v in arguments.values())


WEIGHTS = {
    "pickle": lambda m: pickle.dumps(_TouchOnUnpickle(m)),
    "pickle_protocol_0": lambda m: pickle.dumps(_TouchOnUnpickle(m), protocol=0),
    "numpy_pickle": lambda m: b"\x93NUMPY\x01\x00" + pickle.dumps(_TouchOnUnpickle(m)),
    "zip_keras_archive": lambda m: b"PK\x03\x04" + bytes(100),
    "text": lambda m: b"print('hello')\n",
    "empty": lambda m: b"",
}


@pytest.mark.parametrize("case", sorted(WEIGHTS))
def test_weights_that_are_not_hdf5_are_never_read(folder, marker, case):
    (folder / "model.weights.h5").write_bytes(WEIGHTS[case](marker))
    _refused(folder, r"Cannot read the weights in .*model.weights.h5: not an HDF5 file", load_weights=True)


def test_a_pickle_is_named_as_such(folder, marker):
    (folder / "model.weights.h5").write_bytes(pickle.dumps(_TouchOnUnpickle(marker)))
    _refused(folder, r"looks like a Python pickle", load_weights=True)


BAD_JSON = {
    "not_json": (b"{ this is not json", r"Cannot read .*metadata.json .*as JSON"),
    "pickle": (None, r"Cannot read .*metadata.json .*as JSON"),
    "not_utf8": (b"\xff\xfe{\x00}\x00", r"Cannot read .*metadata.json .*as JSON"),
    "a_list": (b'["format_version", 1]', r"metadata.json must hold a JSON object, got list"),
    "deeply_nested": (b"[" * 100_000 + b"]" * 100_000, r"Cannot read .*metadata.json"),
}


@pytest.mark.parametrize("case", sorted(BAD_JSON))
def test_a_metadata_file_that_is_not_a_json_object_is_refused(folder, marker, case):
    data, message = BAD_JSON[case]
    if data is None:
        data = pickle.dumps(_TouchOnUnpickle(marker))
    (folder / "metadata.json").write_bytes(data)
    _refused(folder, message)


@pytest.mark.parametrize("case", ["not_json", "pickle", "deeply_nested"])
def test_a_config_file_that_is_not_json_is_refused(folder, marker, case):
    data, _ = BAD_JSON[case]
    if data is None:
        data = pickle.dumps(_TouchOnUnpickle(marker))
    (folder / "config.json").write_bytes(data)
    _refused(folder, r"Cannot read .*config.json .*as JSON")


def test_a_malicious_hub_repo_is_refused_the_same_way(clean_preset, folder, marker, monkeypatch):
    """hf:// handles go through the same checks once the files are in the Hub cache."""
    import huggingface_hub

    (folder / "config.json").write_text(json.dumps(_lambda_config(marker)))
    (folder / "model.weights.h5").write_bytes(pickle.dumps(_TouchOnUnpickle(marker)))
    requested = []

    def fake_download(repo_id, filename, revision=None, **kwargs):
        requested.append((repo_id, filename, revision))
        return str(folder / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    with pytest.raises(ValueError, match=r"describes class 'Lambda'"):
        RealNVP.from_preset("hf://evil/backdoor@v1")
    assert {name for _, name, _ in requested} <= {"config.json", "metadata.json", "model.weights.h5"}
    assert all(repo == "evil/backdoor" and revision == "v1" for repo, _, revision in requested)

    shutil.copy2(clean_preset / "config.json", folder / "config.json")  # a valid config, pickled weights
    with pytest.raises(ValueError, match=r"not an HDF5 file \(it looks like a Python pickle\)"):
        RealNVP.from_preset("hf://evil/backdoor@v1")
