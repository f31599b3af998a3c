"""Reading and writing a preset folder: `config.json`, `metadata.json`, `model.weights.h5`.

Loading never runs code from the folder: the config must describe a `RealNVP` and hold
only its constructor's plain arguments, which are checked one by one (type and range) and
together against the size limits of `keras_realnvp.models.size_limits` (an oversized config
is refused at once instead of hanging the constructor); nothing is unpickled, no class is
looked up by a name the file chooses, and the weights file must be HDF5 (its signature is
checked before any reader opens it). Every refusal is a `ValueError` naming the file and
the problem.
"""

import datetime
import inspect
import json
import math
from pathlib import Path

import keras

from keras_realnvp.config_migration import rename_old_keys
from keras_realnvp.version import __version__

CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.weights.h5"
FORMAT_VERSION = 1
_BASE_KEYS = {"name", "trainable", "dtype"}
_PLAIN_DTYPE_POLICIES = {"DTypePolicy", "FloatDTypePolicy"}
_DTYPE_NAMES = {"float16", "bfloat16", "float32", "float64", "mixed_float16", "mixed_bfloat16"}
# The entries Keras writes around a serialized model; compile and build configs are ignored.
_TOP_LEVEL_KEYS = {"module", "class_name", "config", "registered_name", "compile_config", "build_config"}
# A config is about 1 KB and metadata a few KB: anything far larger is not a preset file.
_MAX_JSON_BYTES = 10_000_000
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ValueError(f"The preset folder {path.parent} has no {path.name} ({what}).")
    try:
        if path.stat().st_size > _MAX_JSON_BYTES:
            raise ValueError(f"{path.stat().st_size} bytes, more than a preset file can hold ({_MAX_JSON_BYTES})")
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError
        raise ValueError(f"Cannot read {path} ({what}) as JSON: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(value).__name__}.")
    return value


def _plain_dtype(dtype, path):
    name = dtype
    if isinstance(dtype, dict):
        config = dtype.get("config")
        if (
            dtype.get("class_name") not in _PLAIN_DTYPE_POLICIES
            or not isinstance(config, dict)
            or set(config) != {"name"}
            or not set(dtype) <= {"module", "class_name", "config", "registered_name"}
        ):
            name = None
        else:
            name = config["name"]
    if dtype is None:
        return None
    if not isinstance(name, str) or name not in _DTYPE_NAMES:
        raise ValueError(
            f"{path}: unsupported dtype entry {dtype!r}; expected a dtype policy name, one of "
            f"{', '.join(sorted(_DTYPE_NAMES))}."
        )
    return name


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# What each stored argument of `RealNVP` may be: plain JSON values only, never objects.
_ARGUMENT_CHECKS = {
    "name": (lambda v: isinstance(v, str) and len(v) <= 200, "a string"),
    "trainable": (lambda v: isinstance(v, bool), "true or false"),
    "image_shape": (
        lambda v: isinstance(v, list) and len(v) == 3 and all(_is_int(d) and d >= 1 for d in v),
        "a list of 3 positive integers",
    ),
    "num_scales": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "filters": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "num_blocks": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "alpha": (_is_number, "a finite number"),
    "bn_momentum": (_is_number, "a finite number"),
    "bn_epsilon": (_is_number, "a finite number"),
    "bn_mode": (lambda v: v in ("running_average", "batch"), '"running_average" or "batch"'),
    "l2_scale": (_is_number, "a finite number"),
    "label_dim": (lambda v: v is None or (_is_int(v) and v >= 1), "null or an integer >= 1"),
    "seed": (lambda v: v is None or _is_int(v), "null or an integer"),
}


def read_model_config(folder, model_class) -> dict:
    """The checked constructor arguments of the `model_class` described by `folder/config.json`.

    Raises a `ValueError` if the file describes any other class, holds arguments this
    version of keras_realnvp does not know (a preset from an incompatible version), or
    describes a model beyond `model_class.check_config_size` (the closed-form size limits).
    Arguments stored under an older name (`model_class.renamed_config_keys`, e.g.
    `condition_dim` for `label_dim`) are returned under the current one. The class is an
    argument, so that this module never imports the models.

    Example:

    >>> from keras_realnvp import RealNVP
    >>> from keras_realnvp.hub import builtin_preset_path
    >>> read_model_config(builtin_preset_path("cifar10"), RealNVP)["num_blocks"]
    8
    """
    path = Path(folder) / CONFIG_FILE
    config = _read_json(path, "the model configuration")
    class_name = config.get("class_name")
    expected = model_class.__name__
    registered = config.get("registered_name", f"keras_realnvp>{expected}")
    module = config.get("module", "keras_realnvp")
    if (
        class_name != expected
        or registered != f"keras_realnvp>{expected}"
        or not isinstance(module, str)
        or not (module == "keras_realnvp" or module.startswith("keras_realnvp."))
    ):
        raise ValueError(
            f"{path} describes class {class_name!r} (registered as {registered!r}, module {module!r}); only "
            f"keras_realnvp's {expected} can be loaded from this preset."
        )
    extra = sorted(set(config) - _TOP_LEVEL_KEYS)
    if extra:
        raise ValueError(f"{path} has unexpected top-level entries: {', '.join(map(repr, extra))}.")
    arguments = config.get("config")
    if not isinstance(arguments, dict):
        raise ValueError(f"{path} has no 'config' object with the model's arguments.")
    arguments = rename_old_keys(arguments, getattr(model_class, "renamed_config_keys", {}), where=path)
    allowed = set(inspect.signature(model_class.__init__).parameters) - {"self", "kwargs"}
    unknown = sorted(set(arguments) - allowed - _BASE_KEYS)
    if unknown:
        raise ValueError(
            f"{path} has arguments this version of keras_realnvp ({__version__}) does not know: "
            f"{', '.join(unknown)}. It was written by an incompatible version."
        )
    for key, value in arguments.items():
        if key == "dtype":
            continue
        check, expected = _ARGUMENT_CHECKS.get(key, (lambda v: isinstance(v, (int, float, str, bool)), "plain"))
        if not check(value):
            raise ValueError(
                f"{path}: argument {key!r} must be {expected} (a plain JSON value), got {json.dumps(value)[:200]}."
            )
    if "image_shape" not in arguments:
        raise ValueError(f"{path} has no 'image_shape' argument, the model's (height, width, channels).")
    model_class.check_config_size(arguments, where=path)
    arguments = dict(arguments)
    arguments["dtype"] = _plain_dtype(arguments.get("dtype"), path)
    arguments.pop("trainable", None)
    return arguments


def read_metadata(folder) -> dict:
    """`folder/metadata.json`, checked for a compatible format version (`{}` if absent).

    Example:

    >>> from keras_realnvp.hub import builtin_preset_path
    >>> read_metadata(builtin_preset_path("celeba_64"))["dataset"]["name"]
    'CelebA'
    """
    path = Path(folder) / METADATA_FILE
    if not path.exists():
        return {}
    metadata = _read_json(path, "the preset metadata")
    version = metadata.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path} has preset format version {version}; this keras_realnvp ({__version__}) reads version "
            f"{FORMAT_VERSION}. Upgrade keras-realnvp or re-save the preset."
        )
    return metadata


def load_weights_file(model, path: Path) -> None:
    """Load `path` into `model`, turning every failure into a `ValueError` that names the file."""
    if not path.is_file():
        raise ValueError(
            f"The preset folder {path.parent} has no weights file {path.name}. Pass load_weights=False for the "
            "untrained architecture."
        )
    with open(path, "rb") as file:
        head = file.read(8)
    if head != _HDF5_SIGNATURE:
        # Refused before any reader sees it: a pickle (or anything else) is never loaded.
        kind = " (it looks like a Python pickle)" if head[:1] == b"\x80" or head[:2] in (b"(d", b"(l", b"}q") else ""
        raise ValueError(
            f"Cannot read the weights in {path}: not an HDF5 file{kind}. A preset's weights are a Keras "
            f"{WEIGHTS_FILE}; nothing else is loaded."
        )
    try:
        model.load_weights(path)
    except Exception as error:  # h5py raises OSError, KeyError, ValueError... for broken files
        raise ValueError(
            f"Cannot read the weights in {path}: {type(error).__name__}: {error}. The file is corrupt, truncated, "
            "or belongs to another architecture."
        ) from None


def save_preset(model, folder, metadata: dict | None = None) -> Path:
    """Write `model` as a KerasHub-style preset folder; returns the folder.

    `config.json` is the serialized model (without compile or build configs),
    `metadata.json` records the package and Keras versions, backend, parameter count,
    date and whatever `metadata` adds (dataset, bits/dim, training steps...).

    Example:

    >>> import tempfile
    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
    >>> folder = save_preset(model, tempfile.mkdtemp(), {"dataset": {"name": "none"}})
    >>> sorted(p.name for p in folder.iterdir())
    ['config.json', 'metadata.json', 'model.weights.h5']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    config.pop("build_config", None)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    record = {
        "format_version": FORMAT_VERSION,
        "keras_realnvp_version": __version__,
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "parameter_count": int(model.count_params()),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **(metadata or {}),
    }
    (folder / METADATA_FILE).write_text(json.dumps(record, indent=2) + "\n")
    # A compiled model's weights file would also hold the optimizer's state (3x the size).
    weights_only = type(model).from_config(model.get_config())
    weights_only.set_weights(model.get_weights())
    weights_only.save_weights(folder / WEIGHTS_FILE)
    return folder
