"""What the benchmark times: the Keras model on the current backend, or the plain-PyTorch baseline.

Both are built from a built-in preset's architecture (its `config.json`, read through
`keras_realnvp.hub`) and offer the same steps: `train_step` (one optimizer step on a
uint8 batch, dequantized inside), `eval_step` (bits/dim of a dequantized batch) and
`sample_step` (a batch of samples), plus `describe`, `forward_flops` and `step_memory`.

Example:

>>> subject = make_subject("keras", architecture("embedded_16"), batch_size=2)
>>> subject.describe()["parameters"] > 0, subject.sample_step().shape
(True, (2, 16, 16, 3))
"""

import math

import numpy as np

ARCHITECTURE_KEYS = ("image_shape", "num_scales", "filters", "num_blocks")
IMPLEMENTATIONS = ("torch-baseline", "keras")


def _open(name: str):
    from keras_realnvp import RealNVP
    from keras_realnvp.hub import Preset

    return Preset.open(name, RealNVP, need_weights=False)


def preset_names(paper_only: bool = False) -> list:
    """The built-in presets the benchmark can build (unconditional ones), sorted; `paper_only`: the paper's.

    Example:

    >>> "cifar10" in preset_names(), "embedded_16" in preset_names(paper_only=True)
    (True, False)
    """
    from keras_realnvp.hub import builtin_preset_names

    names = []
    for name in builtin_preset_names():
        preset = _open(name)
        if preset.config.get("label_dim") is not None:
            continue  # the baseline has no class conditioning
        if paper_only and preset.metadata.get("paper_bits_per_dim") is None:
            continue
        names.append(name)
    return names


OVERRIDABLE_KEYS = ("num_scales", "filters", "num_blocks")


def architecture(preset: str, **overrides) -> dict:
    """The constructor arguments that define a built-in preset's network, from its `config.json`.

    `overrides` (`num_scales`, `filters`, `num_blocks`; `None` keeps the preset's) change
    the network, not the image shape: the benchmark's `--num-scales`, `--filters` and
    `--num-blocks`.

    Example:

    >>> architecture("cifar10")
    {'image_shape': (32, 32, 3), 'num_scales': 2, 'filters': 64, 'num_blocks': 8}
    >>> architecture("cifar10", num_blocks=2, filters=None)["num_blocks"]
    2
    """
    unknown = set(overrides) - set(OVERRIDABLE_KEYS)
    if unknown:
        raise ValueError(f"architecture: unknown overrides {sorted(unknown)}; known: {OVERRIDABLE_KEYS}")
    config = _open(preset).config
    arch = {key: config[key] for key in ARCHITECTURE_KEYS}
    arch.update({key: value for key, value in overrides.items() if value is not None})
    arch["image_shape"] = tuple(arch["image_shape"])
    return arch


def options_overrides(options) -> dict:
    """The architecture overrides the benchmark's parsed arguments set (those not `None`).

    Example:

    >>> import argparse
    >>> options_overrides(argparse.Namespace(preset="cifar10", num_scales=1, filters=None))
    {'num_scales': 1}
    """
    return {key: getattr(options, key) for key in OVERRIDABLE_KEYS if getattr(options, key, None) is not None}


def options_architecture(options) -> dict:
    """`architecture` of the benchmark's parsed arguments: `options.preset` with its overrides.

    Example:

    >>> import argparse
    >>> architecture_of = options_architecture(argparse.Namespace(preset="cifar10", num_scales=1))
    >>> architecture_of["num_scales"], architecture_of["filters"]
    (1, 64)
    """
    return architecture(options.preset, **options_overrides(options))


def pixels(image_shape, count: int, seed: int) -> np.ndarray:
    """`count` uint8 photo patches (the embedded data) or, without scikit-learn, uniform noise.

    Example:

    >>> batch = pixels((16, 16, 3), 4, seed=0)
    >>> batch.shape, batch.dtype
    ((4, 16, 16, 3), dtype('uint8'))
    """
    from keras_realnvp.data import load_embedded_patches

    try:
        patches = load_embedded_patches("train", patch_size=image_shape[0])
    except ImportError:  # no scikit-learn (a bare GPU machine): the data source only changes
        return np.random.default_rng(seed).integers(0, 256, (count, *image_shape), dtype=np.uint8)
    rng = np.random.default_rng(seed)
    return patches[rng.choice(len(patches), count, replace=len(patches) < count)]


def _trainable_count(model) -> int:
    return int(sum(math.prod(v.shape) for v in model.trainable_weights))


class KerasSubject:
    """`keras_realnvp.RealNVP` on the current backend, through its public methods.

    `jit_compile`: "auto" (Keras' default per backend), "true", "false", or "eager"
    (`run_eagerly=True`: no `tf.function` / `jax.jit` anywhere, also in `log_prob` and `sample`).

    Example:

    >>> subject = KerasSubject(architecture("embedded_16"), batch_size=2)
    >>> subject.eval_step().shape
    (2,)
    """

    def __init__(self, arch, batch_size, dtype_policy="float32", jit_compile="auto", seed=0):
        import keras

        from keras_realnvp import RealNVP
        from keras_realnvp.data.embedded import dequantize_numpy
        from keras_realnvp.training.optimizer import GlobalBatchAdam

        keras.utils.set_random_seed(seed)
        keras.config.set_dtype_policy(dtype_policy)
        self.keras = keras
        self.model = RealNVP(**arch, seed=seed)
        compile_kwargs = {} if jit_compile == "auto" else {"jit_compile": jit_compile == "true"}
        if jit_compile == "eager":
            compile_kwargs = {"run_eagerly": True}
        self.model.compile(optimizer=GlobalBatchAdam(1e-3, global_clipnorm=100.0), **compile_kwargs)
        self.batch_size = batch_size
        self.pixels = pixels(arch["image_shape"], batch_size, seed)
        self.images = dequantize_numpy(self.pixels, seed).astype(np.float32)

    def describe(self) -> dict:
        """The implementation, backend, framework, device, compile mode and parameter counts."""
        from keras_realnvp.backend.devices import device_description

        info = {"implementation": "keras", **device_description(), "keras": self.keras.__version__}
        info["jit_compile"] = "eager" if self.model.run_eagerly else self.model.jit_compile
        info["parameters"] = int(self.model.count_params())
        info["trainable_parameters"] = _trainable_count(self.model)
        return info

    def forward_flops(self) -> int:
        """FLOPs of one image's forward pass (`keras_realnvp.flops.forward_flops`)."""
        from keras_realnvp.flops import forward_flops

        return forward_flops(self.model)

    def train_step(self) -> float:
        """One optimizer step; returns the loss."""
        return float(self.model.train_on_batch(self.pixels, return_dict=True)["loss"])

    def eval_step(self) -> np.ndarray:
        """Bits/dim of the batch."""
        return self.keras.ops.convert_to_numpy(self.model.bits_per_dim(self.images))

    def sample_step(self) -> np.ndarray:
        """A batch of samples."""
        return self.keras.ops.convert_to_numpy(self.model.sample(self.batch_size))

    def step_memory(self):
        """`(bytes, how measured)` of one training step, or None to measure resident memory instead."""
        from keras_realnvp.backend.devices import training_step_memory

        return training_step_memory(self.model, self.pixels, self.train_step)


class BaselineSubject:
    """The plain-PyTorch Real NVP (`keras_realnvp.backend.torch_baseline`), checked against the Keras model.

    At start-up it builds the Keras model of the same architecture and asserts the same
    parameter counts and, with the Keras weights copied in, the same bits/dim (within 1e-3).

    Example:

    >>> subject = BaselineSubject(architecture("embedded_16"), batch_size=2)
    >>> subject.describe()["checked_against_keras"]["same_parameter_count"]
    True
    """

    def __init__(self, arch, batch_size, dtype_policy="float32", jit_compile="auto", seed=0):
        from keras_realnvp.backend.torch_baseline_runner import Runner
        from keras_realnvp.data.embedded import dequantize_numpy

        del jit_compile  # plain PyTorch runs eagerly
        self.runner = Runner(arch["image_shape"], arch["num_scales"], arch["filters"], arch["num_blocks"],
                             amp_bfloat16=dtype_policy == "mixed_bfloat16", seed=seed)
        self.arch = arch
        self.batch_size = batch_size
        self.pixels = pixels(arch["image_shape"], batch_size, seed)
        self.images = dequantize_numpy(self.pixels, seed)
        self.reference, self.flops = self._check_against_keras(arch)

    def _check_against_keras(self, arch):
        """Same architecture as keras_realnvp: same parameter counts and same log-density."""
        import keras

        from keras_realnvp import RealNVP
        from keras_realnvp.backend.torch_baseline_runner import Runner, load_keras_weights
        from keras_realnvp.flops import forward_flops

        keras_model = RealNVP(**arch, seed=1)
        counts = (self.runner.parameter_count(), _trainable_count(keras_model))
        if counts[0] != counts[1]:
            raise AssertionError(f"trainable parameters: baseline {counts[0]}, keras_realnvp {counts[1]}")
        counts = (self.runner.state_count(), int(keras_model.count_params()))
        if counts[0] != counts[1]:
            raise AssertionError(f"parameters and statistics: baseline {counts[0]}, keras_realnvp {counts[1]}")
        check = Runner(arch["image_shape"], arch["num_scales"], arch["filters"], arch["num_blocks"], seed=1)
        load_keras_weights(check.model, keras_model)
        x = self.images[:2].astype(np.float32)
        expected = keras.ops.convert_to_numpy(keras_model.bits_per_dim(x))
        error = float(np.abs(expected - check.bits_per_dim(x)).max())
        if not error < 1e-3:
            raise AssertionError(f"the baseline's bits/dim differ from keras_realnvp's by {error}")
        # Same layers as the Keras model, so the same FLOP count.
        return {"same_parameter_count": True, "bits_per_dim_difference": error}, forward_flops(keras_model)

    def describe(self) -> dict:
        """The implementation, framework, device, memory format and parameter counts."""
        runner = self.runner
        return {
            "implementation": "torch-baseline", "backend": "plain PyTorch", "framework": runner.framework(),
            "device": runner.device.type, "memory_format": runner.memory_format_name(),
            "parameters": runner.state_count(), "trainable_parameters": runner.parameter_count(),
            "checked_against_keras": self.reference,
        }

    def forward_flops(self) -> int:
        """FLOPs of one image's forward pass (those of the Keras model of the same architecture)."""
        return self.flops

    def train_step(self) -> float:
        """One optimizer step; returns the loss."""
        return self.runner.train_step(self.pixels)

    def eval_step(self) -> np.ndarray:
        """Bits/dim of the batch."""
        return self.runner.bits_per_dim(self.images)

    def sample_step(self) -> np.ndarray:
        """A batch of samples."""
        h, w, _ = self.arch["image_shape"]
        return self.runner.sample(self.batch_size, h, w)

    def step_memory(self):
        """`(bytes, how measured)` of one training step on CUDA, or None to measure resident memory instead."""
        return self.runner.step_memory(self.pixels)


def make_subject(implementation, arch, batch_size, dtype_policy="float32", jit_compile="auto"):
    """A `BaselineSubject` for "torch-baseline", else a `KerasSubject` on the current backend.

    Example:

    >>> type(make_subject("keras", architecture("embedded_16"), 2)).__name__
    'KerasSubject'
    """
    cls = BaselineSubject if implementation == "torch-baseline" else KerasSubject
    return cls(arch, batch_size, dtype_policy, jit_compile)
