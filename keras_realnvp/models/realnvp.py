"""The multi-scale Real NVP model of section 3.6."""

import inspect
import os
from pathlib import Path

import keras

from keras_realnvp.bijectors import AffineCoupling, BijectorChain, Logit, RunningBatchNorm, Squeeze
from keras_realnvp.config_migration import LABEL_DIM_RENAMES, rename_old_keys
from keras_realnvp.layers import FactorOut, UniformDequantization
from keras_realnvp.models.flow import Flow
from keras_realnvp.models.input_checks import check_image_shape, check_images, check_latent_list
from keras_realnvp.models.objective import TrainingObjective
from keras_realnvp.models.scales import Scale, coupling_widths, scale_shapes, spatial_rule
from keras_realnvp.models.size_limits import check_model_size
from keras_realnvp.tensor_types import Shape, Tensor


class _BuiltinPresets:
    """`RealNVP.presets`: the built-in preset names mapped to their metadata."""

    def __get__(self, instance, owner):
        from keras_realnvp.hub import builtin_preset_names, preset_metadata

        return {name: preset_metadata(name) for name in builtin_preset_names()}


def _is_integer(x):
    return keras.backend.standardize_dtype(x.dtype).startswith(("int", "uint"))


@keras.saving.register_keras_serializable(package="keras_realnvp")
class RealNVP(TrainingObjective, Flow):
    """Real NVP (Dinh et al., ICLR 2017): exact log-likelihood, encoding, decoding, sampling.

    The flow is `logit -> [3 checkerboard couplings, squeeze, 3 channel couplings,
    factor out half] x (num_scales - 1) -> 4 checkerboard couplings`, each coupling
    followed by a batch normalization of its output (`bn_mode`). The hidden maps
    of the s/t networks double at each scale, and channel couplings use twice the
    width of the checkerboard ones at the same scale. The prior is a unit Gaussian.

    Inputs are pixel values: floats in [0, 256) are taken as already dequantized;
    integer arrays (0..255) are dequantized with fresh uniform noise when the model is
    *called* (which is what `fit` and `evaluate` do), but never by `log_prob`,
    `bits_per_dim` or `encode`, which evaluate the density at the points given.

    `log_prob`, `bits_per_dim`, `encode`, `decode`, `sample_latents` and `sample` are
    `Flow`'s (`keras_realnvp.models.flow`; gradients per backend: `Flow.log_prob`). The
    latents are a list with one tensor per scale, finest first (`latent_shapes`);
    `scales()` walks the multi-scale structure. Latents that come from data decode back
    into [0, 256); other latents (samples, interpolations) decode into the logit's full
    preimage, which is a little wider (about [-14.2, 270.2) for alpha = 0.05): nothing is
    clipped. `sample(..., image_shape=(H, W, C))` samples at another size than the
    training one (the model is fully convolutional: appendix C's extrapolation).

    Training: `model.compile(optimizer=...)` then `model.fit(images)`. The loss is the
    authors' objective: the mean negative log-likelihood in nats per image plus `l2_scale`
    times the sum of the squared weight-scale parameters (`weight_scale_variables`). Their
    gradient-norm clip (100, `global_clipnorm` of the optimizer, as `keras-realnvp train` sets it)
    applies to this objective. `bits_per_dim` is reported as a metric; it is the loss
    without the penalty, divided by `D ln 2` (`training_objective` says all this in words).

    Args:
        image_shape: `(height, width, channels)` of the training images. The model is
            fully convolutional: any height and width divisible by
            `2^(num_scales - 1)` (and at least `2^num_scales`) works after training.
        num_scales: number of scales (the last has no squeeze).
        filters: hidden maps of the s/t networks at the first scale.
        num_blocks: residual blocks per s/t network.
        alpha: margin of the logit preprocessing.
        bn_momentum: momentum `rho` of the batch normalizations (eq. 20-21).
        bn_epsilon: epsilon of the coupling-output batch normalizations.
        bn_mode: the statistics the coupling-output batch normalizations use in training:
            `"running_average"` (appendix E, what the paper used on CIFAR-10) or `"batch"`
            (ordinary batch normalization, the paper's other datasets and the authors'
            default). Both evaluate with stored averages; see `RunningBatchNorm`. The
            default is `"running_average"`, which configs written before this argument
            existed were trained with.
        l2_scale: L2 coefficient on the weight-scale parameters, relative to the negative
            log-likelihood in nats per image (the paper's 5e-5).
        label_dim: length of a label vector the flow is conditioned on
            (appendix F), or `None`.
        seed: seed of the dequantization and sampling generators, an integer in
            `[0, 2^31 - 1)`, or `None`.

    The settings are checked before anything is built: integers (not floats or bools),
    and a model within the documented size limits (parameters, activations per image,
    residual blocks) of `keras_realnvp.models.size_limits`.

    Example:

    >>> import numpy as np
    >>> model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=8, num_blocks=1)
    >>> x = np.random.uniform(0, 256, size=(4, 8, 8, 3)).astype("float32")
    >>> bpd = model.bits_per_dim(x)             # per image, shape (4,)
    >>> latents = model.encode(x)               # finest scale first
    >>> [tuple(z.shape) for z in latents]
    [(4, 4, 4, 6), (4, 4, 4, 6)]
    >>> float(np.abs(np.asarray(model.decode(latents)) - x).max()) < 1e-2
    True
    >>> tuple(model.sample(2, temperature=0.7, seed=1).shape)
    (2, 8, 8, 3)
    """

    def __init__(
        self,
        image_shape: Shape,
        num_scales: int = 2,
        filters: int = 64,
        num_blocks: int = 8,
        alpha: float = 0.05,
        bn_momentum: float = 0.95,
        bn_epsilon: float = 1e-4,
        bn_mode: str = "running_average",
        l2_scale: float = 5e-5,
        label_dim: int | None = None,
        seed: int | None = None,
        **kwargs,
    ):
        # Pixel values must reach the flow unrounded: no casting of float inputs to a mixed
        # policy's bfloat16 on the way in (the flow layers below compute in float32).
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        # Types, ranges and the size limits (keras_realnvp.models.size_limits), in closed form
        # before any layer exists: an oversized setting would otherwise hang or hit the allocator.
        size = check_model_size(image_shape, num_scales, filters, num_blocks, label_dim, seed)
        image_shape, num_scales, filters, num_blocks = size.image_shape, size.num_scales, size.filters, size.num_blocks
        label_dim, seed = size.label_dim, size.seed
        self.image_shape = image_shape
        self.num_scales = num_scales
        self.filters = filters
        self.num_blocks = num_blocks
        self.alpha = alpha
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        if bn_mode not in RunningBatchNorm.MODES:
            raise ValueError(f"`bn_mode` must be one of {RunningBatchNorm.MODES}, got {bn_mode!r}.")
        self.bn_mode = bn_mode
        self.l2_scale = l2_scale
        self.label_dim = label_dim
        self.seed = seed
        self._check_shape((1, *image_shape), "image_shape")

        # Under a mixed policy only the s/t networks compute in the low precision: the flow
        # itself (pixels, latents, s, t, log-determinants, batch-norm statistics, the prior)
        # stays in the variable dtype, float32, where invertibility and exact log-densities
        # need it.
        network_policy = self.dtype_policy
        policy = self._flow_policy = (
            network_policy
            if network_policy.compute_dtype == network_policy.variable_dtype
            else keras.dtype_policies.DTypePolicy(network_policy.variable_dtype)
        )
        self._network_policy = None if policy is network_policy else network_policy
        self.logit = Logit(alpha, dtype=policy, name="logit")
        self.dequantizer = UniformDequantization(seed, dtype=policy, name="dequantization")
        self.sampling_seed = keras.random.SeedGenerator(
            None if seed is None else seed + 1, name="sampling_seed"
        )
        self.checkerboard_flows = []
        self.squeezes = []
        self.channel_flows = []
        self.factor_outs = []
        # The attribute names and layer names below are the variable paths of every saved
        # model and preset: keep them. `scales()` walks these lists.
        for i in range(num_scales - 1):
            checkerboard_width, channel_width = coupling_widths(filters, i)
            self.checkerboard_flows.append(
                self._coupling_chain("checkerboard", 3, checkerboard_width, f"scale_{i}_checkerboard")
            )
            self.squeezes.append(Squeeze(dtype=policy, name=f"scale_{i}_squeeze"))
            self.channel_flows.append(self._coupling_chain("channel", 3, channel_width, f"scale_{i}_channel"))
            self.factor_outs.append(FactorOut(dtype=policy, name=f"scale_{i}_factor_out"))
        last = num_scales - 1
        self.final_flow = self._coupling_chain(
            "checkerboard", 4, coupling_widths(filters, last)[0], f"scale_{last}_checkerboard"
        )
        self._bits_per_dim_tracker = keras.metrics.Mean(name="bits_per_dim")
        self.build((None, *image_shape))

    def _coupling_chain(self, mask_type, count, width, name):
        layers = []
        for j in range(count):
            layers.append(
                AffineCoupling(
                    mask_type,
                    reverse=bool(j % 2),
                    filters=width,
                    num_blocks=self.num_blocks,
                    label_dim=self.label_dim,
                    bn_momentum=self.bn_momentum,
                    network_dtype=self._network_policy,
                    dtype=self._flow_policy,
                    name=f"{name}_coupling_{j}",
                )
            )
            layers.append(
                RunningBatchNorm(
                    momentum=self.bn_momentum,
                    epsilon=self.bn_epsilon,
                    mode=self.bn_mode,
                    dtype=self._flow_policy,
                    name=f"{name}_batch_norm_{j}",
                )
            )
        return BijectorChain(layers, dtype=self._flow_policy, name=name)

    def build(self, input_shape):
        shape = tuple(input_shape)
        self.logit.build(shape)
        self.dequantizer.build(shape)
        for scale in self._scales_at(shape[1:]):
            scale.checkerboard.build((shape[0], *scale.shapes.input_shape))
            if not scale.is_last:
                scale.squeeze.build((shape[0], *scale.shapes.input_shape))
                scale.channel.build((shape[0], *scale.shapes.squeezed_shape))
        self.built = True

    # ------------------------------------------------------- the scales

    def scales(self, image_shape: Shape | None = None) -> list:
        """The scales of the flow, finest first: one `Scale` (layers and shapes) each.

        The one walk over the multi-scale structure (`keras_realnvp.models.scales`): the
        build, the forward and inverse passes, the L2 penalty, `diagnostics` and `flops`
        all use it. The shapes are those of images of `image_shape` (default: the model's),
        checked as `latent_shapes` checks them.

        Example:

        >>> model = RealNVP(image_shape=(16, 16, 3), num_scales=3, filters=4, num_blocks=1)
        >>> [(s.shapes.input_shape, s.shapes.latent_shape) for s in model.scales()]
        [((16, 16, 3), (8, 8, 6)), ((8, 8, 6), (4, 4, 12)), ((4, 4, 12), (4, 4, 12))]
        >>> [len(s.chains) for s in model.scales((32, 32, 3))]
        [2, 2, 1]
        """
        if image_shape is not None:
            self.latent_shapes(image_shape)  # the checks
        return self._scales_at(self.image_shape if image_shape is None else tuple(image_shape))

    def _scales_at(self, image_shape):
        layers = [*zip(self.checkerboard_flows, self.squeezes, self.channel_flows, self.factor_outs)]
        layers.append((self.final_flow, None, None, None))
        return [Scale(*step, shapes) for step, shapes in zip(layers, scale_shapes(image_shape, self.num_scales))]

    # ----------------------------------------------------------------- the flow

    def forward_flow(self, x: Tensor, labels: Tensor | None = None, training: bool = False) -> tuple:
        """`f(x)`: pixel values to `(latents, log|det df/dx|)`, no input checks.

        The building block of the public methods; usable inside compiled code.
        """
        h, log_det = self.logit(x)
        latents = []
        for scale in self._scales_at(self.image_shape):  # layers only: any image size runs
            z, h, scale_log_det = scale.forward(h, labels=labels, training=training)
            latents.append(z)
            log_det = log_det + scale_log_det
        return latents, log_det

    def inverse_flow(self, latents: list, labels: Tensor | None = None) -> Tensor:
        """`f^-1(latents)`: back to pixel values, no input checks."""
        h = None
        for scale, z in zip(reversed(self._scales_at(self.image_shape)), reversed(latents)):
            h = scale.inverse(z, h, labels=labels)
        return self.logit.inverse(h)

    def call(self, inputs, training=False):
        """Per-image log-likelihood in nats; integer pixels are dequantized first.

        `inputs` is a batch of images, or for a conditional model a dict
        `{"images": ..., "labels": ...}`.
        """
        images, labels = self._split_inputs(inputs)
        if _is_integer(images):
            images = self.dequantizer(images)
        latents, log_det = self.forward_flow(images, labels=labels, training=training)
        return self.prior_log_prob(latents) + log_det

    def _split_inputs(self, inputs):
        if isinstance(inputs, dict):
            return inputs["images"], inputs.get("labels")
        return inputs, None

    # ----------------------------------------------------------- public API

    @property
    def spatial_multiple(self):
        """Height and width must be multiples of this (`2^(num_scales - 1)`, `scales.spatial_rule`)."""
        return spatial_rule(self.num_scales)[0]

    @property
    def min_spatial_size(self):
        """The smallest height or width: the last scale needs at least 2x2 positions."""
        return spatial_rule(self.num_scales)[1]

    def _check_shape(self, shape, what):
        multiple, minimum = spatial_rule(self.num_scales)
        for name, size in zip(("height", "width"), shape[1:3]):
            if size % multiple or size < minimum:
                raise ValueError(
                    f"{what} {name} {size} must be a multiple of {multiple} and at least {minimum} "
                    f"for num_scales={self.num_scales}."
                )

    # Flow's hooks: the public log_prob, bits_per_dim, encode, decode, sample_latents and
    # sample (keras_realnvp.models.flow) check images and latents with these.

    @property
    def _flow_dtype(self):
        return self._flow_policy.compute_dtype

    def _check_data(self, images):
        return check_images(images, self.image_shape[-1], self.spatial_multiple, self.min_spatial_size)

    def _check_latents(self, latents):
        return check_latent_list(latents, self.num_scales, self.image_shape[-1])

    def latent_shapes(self, image_shape: Shape | None = None) -> list:
        """The per-example latent shapes for images of `image_shape` (default: the model's).

        Example:

        >>> model = RealNVP(image_shape=(32, 32, 3), num_scales=2, filters=4, num_blocks=1)
        >>> model.latent_shapes()
        [(16, 16, 6), (16, 16, 6)]
        >>> model.latent_shapes((64, 96, 3))
        [(32, 48, 6), (32, 48, 6)]
        """
        h, w, c = self.image_shape if image_shape is None else check_image_shape(image_shape)
        if c != self.image_shape[-1]:
            raise ValueError(f"image_shape has {c} channels but the model has {self.image_shape[-1]}.")
        self._check_shape((1, h, w, c), "image_shape")
        return [s.latent_shape for s in scale_shapes((h, w, c), self.num_scales)]

    def get_config(self):
        return {
            **super().get_config(),
            "image_shape": list(self.image_shape),
            "num_scales": self.num_scales,
            "filters": self.filters,
            "num_blocks": self.num_blocks,
            "alpha": self.alpha,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
            "bn_mode": self.bn_mode,
            "l2_scale": self.l2_scale,
            "label_dim": self.label_dim,
            "seed": self.seed,
        }

    # Config keys written under an older name, `{old: new}` (keras_realnvp.config_migration).
    renamed_config_keys = LABEL_DIM_RENAMES

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> "RealNVP":
        """The model a config describes; a config written before a rename (`condition_dim`) loads too.

        Example:

        >>> old = RealNVP(image_shape=(8, 8, 1), num_scales=1, filters=2, num_blocks=0, label_dim=3).get_config()
        >>> old["condition_dim"] = old.pop("label_dim")    # as configs were written before label_dim
        >>> RealNVP.from_config(old).label_dim
        3
        """
        return super().from_config(rename_old_keys(config, cls.renamed_config_keys), custom_objects)

    # ------------------------------------------------------------- presets

    presets = _BuiltinPresets()

    @classmethod
    def from_preset(cls, preset: str | os.PathLike, load_weights: bool = True, **overrides) -> "RealNVP":
        """Build a model from a preset: a local folder, a built-in name, or `hf://owner/repo`.

        A local folder always wins over a built-in name. Built-in names are listed by
        `RealNVP.presets`; a built-in preset whose weights are not published raises a
        `ValueError` that says how to get the untrained architecture
        (`load_weights=False`). `overrides` replace stored constructor arguments.
        Loading never executes code from the preset (see `keras_realnvp.hub`).

        Example:

        >>> model = RealNVP.from_preset("embedded_16")   # ships with trained weights
        >>> tuple(model.sample(2, temperature=0.7, seed=0).shape)
        (2, 16, 16, 3)
        >>> untrained = RealNVP.from_preset("celeba_64", load_weights=False, filters=4, num_blocks=1)
        >>> untrained.image_shape
        (64, 64, 3)

        The preset's metadata (dataset settings, what training recorded) is not on the
        model: `keras_realnvp.hub.Preset.open(preset, RealNVP).metadata` reads it.
        """
        from keras_realnvp.hub import Preset

        return Preset.open(preset, cls, need_weights=load_weights).build(load_weights=load_weights, **overrides)

    @classmethod
    def check_config_size(cls, arguments: dict, where: str | os.PathLike | None = None) -> None:
        """Check stored constructor `arguments` against the size limits, before anything is built.

        The closed-form limits of `keras_realnvp.models.size_limits`, for a preset's
        `config.json` (`where`, e.g. its path, starts the error): a config with
        `num_blocks=100000` would otherwise hang in the constructor.

        Example:

        >>> RealNVP.check_config_size({"image_shape": [32, 32, 3], "num_blocks": 100_000}, where="config.json")
        Traceback (most recent call last):
        ...
        ValueError: config.json: num_blocks=100000 gives 1,000,000 residual blocks ...
        """
        defaults = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()}
        names = ("image_shape", "num_scales", "filters", "num_blocks", "label_dim", "seed")
        check_model_size(**{name: arguments.get(name, defaults[name]) for name in names}, where=where)

    def save_to_preset(self, preset_dir: str | os.PathLike, metadata: dict | None = None) -> Path:
        """Write a KerasHub-style preset folder (`config.json`, `metadata.json`, weights).

        Example:

        >>> import tempfile
        >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
        >>> folder = model.save_to_preset(tempfile.mkdtemp(), {"bits_per_dim": 5.0})
        >>> RealNVP.from_preset(str(folder)).filters
        4
        """
        from keras_realnvp.hub import save_preset

        return save_preset(self, preset_dir, metadata)
