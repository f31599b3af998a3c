"""The size of a model in closed form, from its settings, and the limits its constructor enforces.

A model is built the moment it is constructed, so an oversized setting in a constructor call
or a preset's `config.json` costs before anything else could complain: `num_blocks=100000`
creates millions of layers (hours), `filters=1000000` asks the allocator for terabytes, and
a seed beyond what Keras' random generators hold fails deep inside a backend. The functions
here compute a model's parameter count and per-image activation size from its settings
alone, in microseconds, so `RealNVP`, `RealNVP2D` and preset loading refuse such settings
with a `ValueError` that names the setting, the limit and the largest value that fits.

The limits (module constants, read at every check; raise one, e.g.
`keras_realnvp.models.size_limits.MAX_PARAMETERS = 10**10`, to build a larger model):

- `MAX_PARAMETERS` (2e9): 8 GB of float32 weights, 32 GB with Adam's two slots and the
  gradients; about 20 times the largest built-in preset (celeba_64, 9.5e7).
- `MAX_ACTIVATIONS` (2^36, about 6.9e10 values, 256 GiB in float32, per image): what the s/t
  networks' convolutions and batch-norm-ReLU steps output for one image (`activation_count`),
  which a training step keeps for the backward pass; more than any single accelerator holds.
  1024x1024 RGB images with the cifar10 architecture need 1.9e10; the built-in presets at
  most 1.8e7.
- `MAX_NETWORK_BLOCKS` (4096): residual blocks of all s/t networks together (`num_blocks` per
  coupling; for `RealNVP2D`, hidden layers). Every block is a few Keras layers, built one by
  one in Python (about 10 ms each on a CPU); the built-in presets have at most 88.
- `num_scales`: at most `log2(min(height, width))`, since the last scale needs 2x2 positions.
- Seeds: integers in `[0, SEED_LIMIT)`, `SEED_LIMIT = 2^31 - 1`. Keras' `SeedGenerator`
  stores a seed as int32 on PyTorch (2^31 overflows) and as uint32 on JAX (negative seeds
  overflow); TensorFlow takes any int64. `RealNVP` seeds its sampling generator with
  `seed + 1`, hence the exclusive bound.
"""

import fractions
from typing import NamedTuple

from keras_realnvp.bijectors.masks import MASK_TYPES
from keras_realnvp.models._size_advice import VECTOR_ORDINARY, blame, excess
from keras_realnvp.models.input_checks import check_count, check_image_shape, is_integer_scalar
from keras_realnvp.models.scales import coupling_widths, scale_shapes, spatial_rule

MAX_PARAMETERS = 2_000_000_000
MAX_ACTIVATIONS = 2**36
MAX_NETWORK_BLOCKS = 4096
SEED_LIMIT = 2**31 - 1

_MODULE = "keras_realnvp.models.size_limits"

class ModelSize(NamedTuple):
    """The checked settings of a `RealNVP` (Python ints, a tuple `image_shape`) and its size.

    Example:

    >>> import numpy as np
    >>> size = check_model_size(np.array([8, 8, 1]), np.int64(2), 4, 1)
    >>> size.image_shape, type(size.num_scales).__name__, size.parameters
    ((8, 8, 1), 'int', 13317)
    """

    image_shape: tuple
    num_scales: int
    filters: int
    num_blocks: int
    label_dim: int | None
    seed: int | None
    parameters: int
    activations: int


class ToyModelSize(NamedTuple):
    """The checked settings of a `RealNVP2D` (Python ints) and its parameter count.

    Example:

    >>> check_toy_model_size(2, num_couplings=2, filters=4, num_blocks=0)
    ToyModelSize(dim=2, num_couplings=2, filters=4, num_blocks=0, seed=None, parameters=68)
    """

    dim: int
    num_couplings: int
    filters: int
    num_blocks: int
    seed: int | None
    parameters: int


# ------------------------------------------------------- closed forms, settings assumed valid


def _resnet_parameters(inputs, filters, num_blocks, outputs, label_dim):
    # CouplingResNet: every WeightNormConv2D has a direction (k*k*in*out), a magnitude g and
    # a bias (out each); every BatchNormalization has gamma, beta and two moving statistics.
    f, b = filters, num_blocks
    stem = 9 * inputs * f + 2 * f
    projection = label_dim * f + f if label_dim else 0  # Dense(filters) of the labels, only for a conditional model
    skips = (b + 1) * (f * f + 2 * f)  # 1x1 convolutions
    blocks = b * (2 * 4 * f + 2 * (9 * f * f + 2 * f))  # [BN, 3x3 conv] x 2
    head = 4 * f + outputs * f + 2 * outputs  # BN, 1x1 convolution
    return stem + projection + skips + blocks + head


def _image_coupling_parameters(mask_type, channels, filters, num_blocks, label_dim):
    # AffineCoupling on images: a checkerboard coupling's network sees all channels plus the
    # mask; a channel coupling's sees the kept half. Then a per-channel `scale` of s, and the
    # RunningBatchNorm after it: two moving statistics per channel and an update counter.
    if mask_type == "checkerboard":
        inputs, transformed = channels + 1, channels
    else:
        inputs, transformed = channels // 2, channels // 2
    network = _resnet_parameters(inputs, filters, num_blocks, 2 * transformed, label_dim)
    return network + transformed + (2 * channels + 1)


def _couplings(height, width, channels, num_scales, filters):
    # (mask type, how many, positions, channels, network width) of every scale's coupling chains.
    for scale in scale_shapes((height, width, channels), num_scales):
        checkerboard_width, channel_width = coupling_widths(filters, scale.index)
        h, w, c = scale.input_shape
        yield "checkerboard", 4 if scale.is_last else 3, h * w, c, checkerboard_width
        if not scale.is_last:
            h, w, c = scale.squeezed_shape
            yield "channel", 3, h * w, c, channel_width


def _parameters(channels, num_scales, filters, num_blocks, label_dim):
    # Independent of height and width: every weight is per channel (the model is fully convolutional).
    return sum(
        count * _image_coupling_parameters(mask_type, c, width, num_blocks, label_dim)
        for mask_type, count, _, c, width in _couplings(0, 0, channels, num_scales, filters)
    )


def _network_activations(positions, filters, num_blocks, outputs):
    # One s/t network's outputs of convolutions and batch-norm-ReLU steps: the stem, the
    # num_blocks + 1 skips, two convolutions and two BN-ReLUs per block, the head's BN-ReLU
    # (filters maps each), and the head (outputs maps).
    return positions * ((5 * num_blocks + 3) * filters + outputs)


def _activations(height, width, channels, num_scales, filters, num_blocks):
    # The s/t network outputs s and t for the transformed units: 2x the channels (checkerboard),
    # 2x half of them (channel).
    return sum(
        count * _network_activations(positions, net_width, num_blocks, 2 * c if mask_type == "checkerboard" else c)
        for mask_type, count, positions, c, net_width in _couplings(height, width, channels, num_scales, filters)
    )


def _network_blocks(num_scales, num_blocks):
    return (6 * (num_scales - 1) + 4) * num_blocks


def _toy_parameters(dim, num_couplings, filters, num_blocks, mask_type):
    # AffineCoupling on vectors: a CouplingMLP (Dense layers: kernel and bias; `filters` units wide,
    # `num_blocks` hidden layers after the first) and the scale.
    inputs, transformed = (dim, dim) if mask_type == "checkerboard" else (dim // 2, dim // 2)
    outputs = 2 * transformed
    network = inputs * filters + filters + num_blocks * (filters * filters + filters) + filters * outputs + outputs
    return num_couplings * (network + transformed)


# ------------------------------------------------------------------------ the checks


def check_seed(seed, what="seed"):
    """`seed` as a Python int in `[0, SEED_LIMIT)`, or `None`; else a `ValueError`.

    The range every backend's `keras.random.SeedGenerator` accepts (see the module's
    docstring).

    Example:

    >>> check_seed(42), check_seed(None)
    (42, None)
    >>> check_seed(2**80)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: seed must be None or an integer in [0, 2147483647) ..., got 1208925819614629174706176.
    """
    if seed is None:
        return None
    if not is_integer_scalar(seed) or not 0 <= seed < SEED_LIMIT:
        raise ValueError(
            f"{what} must be None or an integer in [0, {SEED_LIMIT}) (what Keras' random generators take on "
            f"every backend), got {seed!r}."
        )
    return int(seed)


def _check_image_model_settings(image_shape, num_scales, filters, num_blocks, label_dim):
    image_shape = check_image_shape(image_shape)
    num_scales = check_count(num_scales, "num_scales")
    filters = check_count(filters, "filters")
    num_blocks = check_count(num_blocks, "num_blocks", minimum=0)
    if label_dim is not None and (not is_integer_scalar(label_dim) or label_dim < 1):
        raise ValueError(f"label_dim must be None or a positive integer, got {label_dim!r}.")
    label_dim = None if label_dim is None else int(label_dim)
    height, width, _ = image_shape
    # Compared through bit lengths: 2**num_scales itself could be astronomically large.
    most = min(height, width).bit_length() - 1
    if most < 1:
        raise ValueError(f"image_shape {image_shape}: height and width must be at least 2 (2x2 positions).")
    if num_scales > most:
        raise ValueError(
            f"num_scales={num_scales} needs a height and width of at least 2^{num_scales} (the last scale "
            f"needs 2x2 positions); image_shape {image_shape} allows num_scales <= {most}."
        )
    multiple, minimum = spatial_rule(num_scales)
    for name, size in (("height", height), ("width", width)):
        if size % multiple:
            raise ValueError(
                f"image_shape {name} {size} must be a multiple of {multiple} and at least {minimum} "
                f"for num_scales={num_scales}."
            )
    return image_shape, num_scales, filters, num_blocks, label_dim


def parameter_count(image_shape, num_scales, filters, num_blocks, label_dim=None):
    """The number of values in a `RealNVP`'s weights (`model.count_params()`), without building it.

    Counts every weight: the s/t networks' convolutions (direction, magnitude, bias), their
    batch normalizations (including the moving statistics), the couplings' scales and the
    coupling-output batch normalizations' statistics. Independent of height and width (the
    model is fully convolutional) and of `bn_mode`. The settings are checked as the
    constructor checks them (types, `num_scales` against the image size).

    Example:

    >>> parameter_count((32, 32, 3), num_scales=2, filters=64, num_blocks=8)  # the cifar10 preset
    19630099
    >>> from keras_realnvp import RealNVP
    >>> RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1).count_params()
    13317
    >>> parameter_count((8, 8, 1), num_scales=2, filters=4, num_blocks=1)
    13317
    """
    settings = _check_image_model_settings(image_shape, num_scales, filters, num_blocks, label_dim)
    image_shape, num_scales, filters, num_blocks, label_dim = settings
    return _parameters(image_shape[-1], num_scales, filters, num_blocks, label_dim or 0)


def activation_count(image_shape, num_scales, filters, num_blocks):
    """Values the s/t networks output for one image: what a training step keeps per image.

    The sum, over every coupling, of its s/t network's convolution and batch-norm-ReLU
    outputs: `(5 * num_blocks + 3)` feature maps of the network's width (stem, skips, the
    blocks' two convolutions and two batch norms, the head's batch norm) and the head's
    output, at the coupling's positions. Not counted: the flow's own tensors (a few
    channels per position, against the networks' `filters`) and the label projection
    (one vector per image).

    Example:

    >>> activation_count((32, 32, 3), num_scales=2, filters=64, num_blocks=8)  # the cifar10 preset
    18357248
    >>> activation_count((64, 64, 3), num_scales=2, filters=64, num_blocks=8)  # 4x the pixels
    73428992
    """
    settings = _check_image_model_settings(image_shape, num_scales, filters, num_blocks, None)
    image_shape, num_scales, filters, num_blocks, _ = settings
    return _activations(*image_shape, num_scales, filters, num_blocks)


def check_model_size(image_shape, num_scales, filters, num_blocks, label_dim=None, seed=None, where=None):
    """Check a `RealNVP`'s settings (types, ranges, size limits) before anything is built.

    Every setting must be a Python or NumPy integer (not a bool, float or string);
    `image_shape` three of them; `num_scales` at most `log2(min(height, width))`, with
    height and width multiples of `2^(num_scales - 1)`. Then the model must stay within
    `MAX_NETWORK_BLOCKS`, `MAX_PARAMETERS` and `MAX_ACTIVATIONS` (see the module's
    docstring). A `ValueError` states, for each limit exceeded, the count and the limit,
    and names the setting to blame: of those that alone could bring the count under the
    limit, the one furthest above its ordinary value (the constructor's default), with the
    largest value that fits while the other settings stay as they are (the others follow as
    alternatives). `where` (e.g. a preset's `config.json` path) starts every message.

    Returns:
        A `ModelSize`: the settings as Python ints (`image_shape` a tuple) and the model's
        `parameters` and per-image `activations`.

    Example:

    >>> check_model_size((32, 32, 3), num_scales=2, filters=64, num_blocks=8).parameters
    19630099
    >>> check_model_size((32, 32, 3), num_scales=2, filters=64, num_blocks=100_000)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: num_blocks=100000 gives 1,000,000 residual blocks ...
    """
    prefix = "" if where is None else f"{where}: "
    try:
        settings = _check_image_model_settings(image_shape, num_scales, filters, num_blocks, label_dim)
        seed = check_seed(seed)
    except ValueError as error:
        raise ValueError(f"{prefix}{error}") from None
    image_shape, num_scales, filters, num_blocks, label_dim = settings
    height, width, channels = image_shape
    values = {
        "height": height,
        "width": width,
        "channels": channels,
        "num_scales": num_scales,
        "filters": filters,
        "num_blocks": num_blocks,
        "label_dim": label_dim or 0,
    }

    def parameters_of(v):
        return _parameters(v["channels"], v["num_scales"], v["filters"], v["num_blocks"], v["label_dim"])

    def activations_of(v):
        return _activations(v["height"], v["width"], v["channels"], v["num_scales"], v["filters"], v["num_blocks"])

    parameters, activations = parameters_of(values), activations_of(values)
    problems = []
    blocks = _network_blocks(num_scales, num_blocks)
    if blocks > MAX_NETWORK_BLOCKS:
        couplings = 6 * (num_scales - 1) + 4
        problems.append(
            f"num_blocks={num_blocks} gives {blocks:,} residual blocks in the model's {couplings} couplings, more "
            f"than the limit of {MAX_NETWORK_BLOCKS:,} ({_MODULE}.MAX_NETWORK_BLOCKS); with num_scales={num_scales}, "
            f"num_blocks can be at most {MAX_NETWORK_BLOCKS // couplings:,}."
        )
    if parameters > MAX_PARAMETERS:
        names = [
            ("filters", f"filters={filters}"),
            ("num_blocks", f"num_blocks={num_blocks}"),
            ("num_scales", f"num_scales={num_scales}"),
            ("label_dim", f"label_dim={label_dim}"),
            ("channels", f"image_shape={image_shape}"),
        ]
        candidates = blame(parameters_of, values, MAX_PARAMETERS, names)
        problems.append(excess("parameters", parameters, MAX_PARAMETERS, f"{_MODULE}.MAX_PARAMETERS", candidates))
    if activations > MAX_ACTIVATIONS:
        # Exactly proportional to height x width (both multiples of 2^(num_scales - 1)).
        unit = spatial_rule(num_scales)[0]
        per_pixel = fractions.Fraction(activations_of({**values, "height": unit, "width": unit}), unit * unit)
        pixels = int(MAX_ACTIVATIONS / per_pixel)
        fits = pixels >= 4 * unit * unit  # the smallest image num_scales allows
        advice = f"height x width can be at most {pixels:,} pixels" if fits else None
        candidates = [("pixels", f"image_shape={image_shape}", height * width, advice)]
        names = [("filters", f"filters={filters}"), ("num_blocks", f"num_blocks={num_blocks}")]
        candidates += blame(activations_of, values, MAX_ACTIVATIONS, names)
        what = "activation values per image"
        problems.append(excess(what, activations, MAX_ACTIVATIONS, f"{_MODULE}.MAX_ACTIVATIONS", candidates))
    if problems:
        raise ValueError(prefix + " ".join(problems))
    return ModelSize(image_shape, num_scales, filters, num_blocks, label_dim, seed, parameters, activations)


def check_toy_model_size(dim, num_couplings, filters, num_blocks, mask_type="checkerboard", seed=None):
    """Check a `RealNVP2D`'s settings (types, ranges, size limits) before anything is built.

    `dim`, `num_couplings` (both at least 2), `filters` (the hidden units of each Dense
    layer, at least 1) and `num_blocks` (the hidden layers after the first, at least 0) must
    be Python or NumPy integers; `mask_type` `"checkerboard"` or `"channel"` (the latter
    with an even `dim`). The hidden layers of all couplings,
    `num_couplings * (num_blocks + 1)`, must stay within `MAX_NETWORK_BLOCKS` and the
    parameters within `MAX_PARAMETERS`. (Per point, a vector model's activations never
    exceed its parameter count, so no activation limit is needed.)

    Returns:
        A `ToyModelSize`: the settings as Python ints and the parameter count.

    Example:

    >>> check_toy_model_size(2, num_couplings=6, filters=64, num_blocks=1).parameters
    27684
    >>> check_toy_model_size(2, num_couplings=6, filters=1.5, num_blocks=1)
    Traceback (most recent call last):
    ...
    ValueError: filters must be a positive integer, got 1.5.
    """
    if is_integer_scalar(dim) and dim < 2:
        raise ValueError(f"dim must be at least 2 (a coupling needs two parts), got {dim}.")
    dim = check_count(dim, "dim", minimum=2)
    if is_integer_scalar(num_couplings) and num_couplings < 2:
        raise ValueError(f"num_couplings must be at least 2 so that every feature is transformed, got {num_couplings}.")
    num_couplings = check_count(num_couplings, "num_couplings", minimum=2)
    filters = check_count(filters, "filters")
    num_blocks = check_count(num_blocks, "num_blocks", minimum=0)
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be one of {MASK_TYPES}, got {mask_type!r}.")
    if mask_type == "channel" and dim % 2:
        raise ValueError(f"A channel mask needs an even dim, got {dim}.")
    seed = check_seed(seed)
    problems = []
    layers = num_couplings * (num_blocks + 1)
    if layers > MAX_NETWORK_BLOCKS:
        problems.append(
            f"num_couplings={num_couplings} and num_blocks={num_blocks} give {layers:,} hidden layers, more than the "
            f"limit of {MAX_NETWORK_BLOCKS:,} ({_MODULE}.MAX_NETWORK_BLOCKS)."
        )
    values = {"dim": dim, "num_couplings": num_couplings, "filters": filters, "num_blocks": num_blocks}

    def parameters_of(v):
        return _toy_parameters(v["dim"], v["num_couplings"], v["filters"], v["num_blocks"], mask_type)

    parameters = parameters_of(values)
    if parameters > MAX_PARAMETERS:
        names = [(name, f"{name}={values[name]}") for name in values]
        candidates = blame(parameters_of, values, MAX_PARAMETERS, names)
        constant = f"{_MODULE}.MAX_PARAMETERS"
        problems.append(excess("parameters", parameters, MAX_PARAMETERS, constant, candidates, VECTOR_ORDINARY))
    if problems:
        raise ValueError(" ".join(problems))
    return ToyModelSize(dim, num_couplings, filters, num_blocks, seed, parameters)
