"""The multi-scale Real NVP model of section 3.6."""

import math

import keras
from keras import ops

from keras_realnvp.backend import replicas
from keras_realnvp.backend.compiled import compile_inference
from keras_realnvp.bijectors import (
    AffineCoupling,
    BijectorChain,
    FactorOut,
    Logit,
    RunningBatchNorm,
    Squeeze,
    UniformDequantization,
)
from keras_realnvp.models.input_checks import (
    as_array,
    check_count,
    check_image_shape,
    check_images,
    check_labels,
    check_latent_list,
    check_temperature,
)
from keras_realnvp.models.size_limits import check_model_size, check_seed

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class _BuiltinPresets:
    """`RealNVP.presets`: the built-in preset names mapped to their metadata."""

    def __get__(self, instance, owner):
        from keras_realnvp.presets import builtin_preset_names, preset_metadata

        return {name: preset_metadata(name) for name in builtin_preset_names()}


def _is_integer(x):
    return keras.backend.standardize_dtype(x.dtype).startswith(("int", "uint"))


@keras.saving.register_keras_serializable(package="keras_realnvp")
class RealNVP(keras.Model):
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

    Training: `model.compile(optimizer=...)` then `model.fit(images)`. The loss is the
    authors' objective: the mean negative log-likelihood in nats per image plus `l2_scale`
    times the sum of the squared weight-scale parameters (`weight_scale_variables`). Their
    gradient-norm clip (100, `global_clipnorm` of the optimizer, as `tools/train.py` sets it)
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
        condition_dim: length of a label vector the flow is conditioned on
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
        image_shape,
        num_scales=2,
        filters=64,
        num_blocks=8,
        alpha=0.05,
        bn_momentum=0.95,
        bn_epsilon=1e-4,
        bn_mode="running_average",
        l2_scale=5e-5,
        condition_dim=None,
        seed=None,
        **kwargs,
    ):
        # Pixel values must reach the flow unrounded: no casting of float inputs to a mixed
        # policy's bfloat16 on the way in (the flow layers below compute in float32).
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        # Types, ranges and the size limits (keras_realnvp.models.size_limits), in closed form
        # before any layer exists: an oversized setting would otherwise hang or hit the allocator.
        size = check_model_size(image_shape, num_scales, filters, num_blocks, condition_dim, seed)
        image_shape, num_scales, filters, num_blocks = size.image_shape, size.num_scales, size.filters, size.num_blocks
        condition_dim, seed = size.condition_dim, size.seed
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
        self.condition_dim = condition_dim
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
        for i in range(num_scales - 1):
            width = filters * 2**i
            self.checkerboard_flows.append(self._coupling_chain("checkerboard", 3, width, f"scale_{i}_checkerboard"))
            self.squeezes.append(Squeeze(dtype=policy, name=f"scale_{i}_squeeze"))
            self.channel_flows.append(self._coupling_chain("channel", 3, 2 * width, f"scale_{i}_channel"))
            self.factor_outs.append(FactorOut(dtype=policy, name=f"scale_{i}_factor_out"))
        self.final_flow = self._coupling_chain(
            "checkerboard", 4, filters * 2 ** (num_scales - 1), f"scale_{num_scales - 1}_checkerboard"
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
                    condition_dim=self.condition_dim,
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
        for checkerboard, squeeze, channel, factor_out in self._scale_steps():
            checkerboard.build(shape)
            shape = squeeze.compute_output_shape(shape)[0]
            squeeze.build(shape)
            channel.build(shape)
            shape = factor_out.compute_output_shape(shape)[1]
        self.final_flow.build(shape)
        self.built = True

    def _scale_steps(self):
        return zip(self.checkerboard_flows, self.squeezes, self.channel_flows, self.factor_outs)

    # ----------------------------------------------------------------- the flow

    def forward_flow(self, x, condition=None, training=False):
        """`f(x)`: pixel values to `(latents, log|det df/dx|)`, no input checks.

        The building block of the public methods; usable inside compiled code.
        """
        h, log_det = self.logit(x)
        latents = []
        for checkerboard, squeeze, channel, factor_out in self._scale_steps():
            h, ld = checkerboard(h, condition=condition, training=training)
            log_det = log_det + ld
            h, _ = squeeze(h)
            h, ld = channel(h, condition=condition, training=training)
            log_det = log_det + ld
            z, h = factor_out(h)
            latents.append(z)
        h, ld = self.final_flow(h, condition=condition, training=training)
        latents.append(h)
        return latents, log_det + ld

    def inverse_flow(self, latents, condition=None):
        """`f^-1(latents)`: back to pixel values, no input checks."""
        h = self.final_flow.inverse(latents[-1], condition=condition)
        steps = list(self._scale_steps())
        for (checkerboard, squeeze, channel, factor_out), z in zip(reversed(steps), reversed(latents[:-1])):
            h = factor_out.merge(z, h)
            h = channel.inverse(h, condition=condition)
            h = squeeze.inverse(h)
            h = checkerboard.inverse(h, condition=condition)
        return self.logit.inverse(h)

    @staticmethod
    def prior_log_prob(latents):
        """Per-example log-density of the latents under the unit Gaussian prior."""
        total = 0.0
        for z in latents:
            flat = ops.reshape(z, (ops.shape(z)[0], -1))
            total = total + ops.sum(-0.5 * ops.square(flat) - _HALF_LOG_2PI, axis=-1)
        return total

    def call(self, inputs, training=False):
        """Per-image log-likelihood in nats; integer pixels are dequantized first.

        `inputs` is a batch of images, or for a conditional model a dict
        `{"images": ..., "labels": ...}`.
        """
        images, labels = self._split_inputs(inputs)
        if _is_integer(images):
            images = self.dequantizer(images)
        latents, log_det = self.forward_flow(images, condition=labels, training=training)
        return self.prior_log_prob(latents) + log_det

    def _split_inputs(self, inputs):
        if isinstance(inputs, dict):
            return inputs["images"], inputs.get("labels")
        return inputs, None

    # ------------------------------------------------------------- training

    def weight_scale_variables(self):
        """The parameters the paper's L2 penalty applies to (§4.1).

        Exactly those the authors' code penalizes (variables named `magnitude` or
        `rescaling_scale`): the weight-norm magnitudes `g` of the s/t networks' skip,
        second-block and head convolutions (`CouplingResNet.weight_scale_variables`), and
        the `scale` of every coupling's `s = scale * tanh(...)`.

        Example:

        >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
        >>> len(model.weight_scale_variables())  # 10 couplings x (2 skips, 1 conv_b, head, scale)
        50
        """
        variables = []
        for chain in [*self.checkerboard_flows, *self.channel_flows, self.final_flow]:
            for layer in chain.bijectors:
                if isinstance(layer, AffineCoupling):
                    variables += [*layer.net.weight_scale_variables(), layer.scale]
        return variables

    def _dims(self, images):
        return math.prod(images.shape[1:])

    def l2_penalty(self):
        """`sum g^2` over `weight_scale_variables()`: the penalty `l2_scale` multiplies.

        Example:

        >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
        >>> # At initialization: every g is 1, the heads' 0.1, the coupling scales 0.
        >>> round(float(keras.ops.convert_to_numpy(model.l2_penalty())), 2)
        204.34
        """
        return sum(ops.sum(ops.square(v)) for v in self.weight_scale_variables())

    def training_objective(self):
        """In words, what `fit` minimizes and what it reports; written into preset metadata.

        Example:

        >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
        >>> model.training_objective()["loss"][:46]
        'mean negative log-likelihood in nats per image'
        """
        return {
            "loss": "mean negative log-likelihood in nats per image (of pixel values on the [0, 256)^D "
            "scale; the authors' cost plus the constant D ln 256) + l2_scale * sum of squared "
            "weight-scale parameters (weight-norm magnitudes of the s/t skip, second-block and head "
            "convolutions, and the couplings' tanh scales)",
            "l2_scale": self.l2_scale,
            "gradient_clip": "global norm of the gradient of that loss (optimizer global_clipnorm)",
            "metric": "bits_per_dim = negative log-likelihood / (D ln 2), without the penalty",
            "bn_mode": self.bn_mode,
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # The authors' objective, nats per image: the L2 coefficient and the gradient clip are
        # relative to it. On bits/dim both would be D ln 2 times stronger (2,129x at 32x32x3).
        nll = -ops.mean(y_pred)
        loss = nll + ops.cast(self.l2_scale * self.l2_penalty(), nll.dtype)
        if self.losses:
            loss = loss + ops.sum(self.losses)
        # Under tf.distribute each replica's loss is its share: the optimizer sums the
        # replicas' gradients (the batch statistics are already global, see replicas.py).
        return loss / replicas.num_replicas()

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        images, _ = self._split_inputs(x)
        self._bits_per_dim_tracker.update_state(-y_pred / (self._dims(images) * math.log(2.0)))
        return self.get_metrics_result()

    def compile(self, *args, **kwargs):
        """`keras.Model.compile`, and the optimizer's variables are created at once.

        The model is built when it is constructed, so its optimizer can be too. Keras
        would otherwise create the optimizer's slots while tracing the first training
        step, which on TensorFlow makes `tf.function` trace that step twice (once to
        create the variables, once to use them). Same arguments as `keras.Model.compile`.

        Example:

        >>> import keras
        >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
        >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> model.optimizer.built
        True
        """
        super().compile(*args, **kwargs)
        if self.optimizer is not None and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def compile_from_config(self, config):
        """Compile as `config` (from `get_compile_config`) says: what loading a model does.

        Keras skips compiling a loaded model whose class overrides `compile`, since a
        custom `compile` might not take Keras' arguments; this one does, so a saved
        training checkpoint loads with its optimizer and the optimizer's state.

        Example:

        >>> import keras
        >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
        >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> other = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
        >>> other.compile_from_config(model.get_compile_config())
        >>> round(float(other.optimizer.learning_rate), 6), other.optimizer.built
        (0.001, True)
        """
        self.compile(**keras.saving.deserialize_keras_object(config))

    # ----------------------------------------------------------- public API

    @property
    def spatial_multiple(self):
        """Height and width must be multiples of this (`2^(num_scales - 1)`)."""
        return 2 ** (self.num_scales - 1)

    @property
    def min_spatial_size(self):
        """The smallest height or width: the last scale needs at least 2x2 positions."""
        return 2**self.num_scales

    def _check_shape(self, shape, what):
        multiple, minimum = 2 ** (self.num_scales - 1), 2**self.num_scales
        for name, size in zip(("height", "width"), shape[1:3]):
            if size % multiple or size < minimum:
                raise ValueError(
                    f"{what} {name} {size} must be a multiple of {multiple} and at least {minimum} "
                    f"for num_scales={self.num_scales}."
                )

    # The inference functions behind log_prob, encode and decode, run compiled (see
    # keras_realnvp.backend.compiled): one compilation per input shape, like `predict`. log_prob
    # and encode share one, so a model used for both compiles its forward pass once.
    # They stop no gradient: `compile_inference` keeps a plain call free of any graph on
    # every backend, and lets a caller who differentiates (a torch tensor that requires
    # grad, a JAX transformation, a tf.GradientTape) differentiate through them.

    def _compiled(self, name, fn):
        functions = self.__dict__.setdefault("_compiled_functions", {})  # untracked by Keras
        if name not in functions:
            functions[name] = compile_inference(self, fn)
        return functions[name]

    def _forward_fn(self, images, labels):
        latents, log_det = self.forward_flow(images, condition=labels, training=False)
        return latents, self.prior_log_prob(latents) + log_det

    def _decode_fn(self, latents, labels):
        return self.inverse_flow(latents, condition=labels)

    def _prepare(self, images, labels):
        # Shapes and dtypes always; values wherever they exist (not for tracers inside a
        # caller's jax.jit / jax.vmap / tf.function). Tensors pass through as they are
        # (the dtype conversion is differentiable), so a caller's gradient reaches them.
        images = check_images(images, self.image_shape[-1], self.spatial_multiple, self.min_spatial_size)
        labels = check_labels(labels, self.condition_dim, images.shape[0])
        images = ops.convert_to_tensor(images, dtype=self._flow_policy.compute_dtype)
        if labels is not None:
            labels = ops.convert_to_tensor(labels, dtype=self.compute_dtype)
        return images, labels

    def log_prob(self, images, labels=None):
        """Log-density `log p_X(x)` in nats per image, on the [0, 256)^D scale.

        Args:
            images: `(N, H, W, C)` pixel values in [0, 256) (already dequantized).
            labels: `(N, condition_dim)` for a conditional model.

        Returns:
            A tensor of shape `(N,)`.

        Gradients: `log_prob`, `bits_per_dim`, `encode` and `decode` are differentiable
        with respect to their inputs (images, latents, labels) whenever the caller
        differentiates, with the backend's own autodiff: the score `d log p(x) / dx` for
        Langevin sampling, adversarial examples or out-of-distribution scores.

        - PyTorch: pass a tensor with `requires_grad=True` (with autograd enabled);
          `model.log_prob(x).sum().backward()` fills `x.grad` (`torch.func.grad` works too).
          Any other call runs under `torch.no_grad()`: its result has no graph
          (`requires_grad` is false). The parameters always require grad, so they are not
          the signal: train with `fit` or `model(x)`.
        - JAX: `jax.grad`, `jax.jit` and `jax.vmap` of a function that calls `log_prob`
          trace through it (`jax.jit(model.log_prob)` works). Inside a caller's `jax.jit`
          the weights are constants of that compilation, as for any Keras layer; map them
          with `keras.StatelessScope` to differentiate with respect to them.
        - TensorFlow: a `tf.GradientTape` that watches the images (or reads the trainable
          variables) records the call, which still runs compiled (`tape.gradient(lp, x)`);
          inside a `tf.function` it is traced into the caller's graph.

        A plain call (none of the above) runs the compiled inference function and keeps
        nothing for a gradient. The shape and dtype of the input are checked on every call;
        its values (finite, in [0, 256)) wherever they exist, also under `jax.grad`, a tape or
        autograd, but not for traced inputs inside `jax.jit`, `jax.vmap` or a `tf.function`,
        which have no values yet: check the data before tracing.

        Example:

        >>> import keras
        >>> import numpy as np
        >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
        >>> tuple(model.log_prob(np.full((3, 8, 8, 1), 100.5, "float32")).shape)
        (3,)

        The score `d log p(x) / dx`, on each backend:

        >>> x = np.random.default_rng(0).uniform(0, 256, (2, 8, 8, 1)).astype("float32")
        >>> if keras.backend.backend() == "torch":
        ...     import torch
        ...     x = torch.tensor(x, requires_grad=True)
        ...     model.log_prob(x).sum().backward()
        ...     score = x.grad.numpy()
        ... elif keras.backend.backend() == "jax":
        ...     import jax
        ...     score = np.asarray(jax.grad(lambda x: model.log_prob(x).sum())(x))
        ... else:
        ...     import tensorflow as tf
        ...     x = tf.constant(x)
        ...     with tf.GradientTape() as tape:
        ...         tape.watch(x)
        ...         total = tf.reduce_sum(model.log_prob(x))
        ...     score = tape.gradient(total, x).numpy()
        >>> score.shape, bool(np.all(np.isfinite(score)))
        ((2, 8, 8, 1), True)
        """
        images, labels = self._prepare(images, labels)
        return self._compiled("forward", self._forward_fn)(images, labels)[1]

    def bits_per_dim(self, images, labels=None):
        """`-log_prob / (D ln 2)` per image: directly comparable with the paper's Table 1.

        Differentiable with respect to the images when the caller differentiates, like
        `log_prob` (see there).

        Example:

        >>> import numpy as np
        >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
        >>> bpd = model.bits_per_dim(np.full((2, 8, 8, 1), 7.5, "float32"))
        >>> tuple(bpd.shape)
        (2,)
        """
        images = as_array(images, "images")  # lists too: the shape is needed below
        log_prob = self.log_prob(images, labels)
        shape = tuple(images.shape)[1:]
        if None in shape:  # left unknown by a caller's trace (a tf.function input signature)
            dims = ops.cast(math.prod(ops.shape(images)[1:]), log_prob.dtype)
        else:
            dims = math.prod(shape)
        return -log_prob / (dims * math.log(2.0))

    def encode(self, images, labels=None):
        """The latents `f(x)`: a list with one tensor per scale, finest first.

        Differentiable with respect to the images when the caller differentiates, like
        `log_prob` (see there); a plain call keeps no graph.

        Example:

        >>> import numpy as np
        >>> model = RealNVP(image_shape=(16, 16, 3), num_scales=3, filters=4, num_blocks=1)
        >>> latents = model.encode(np.full((1, 16, 16, 3), 60.0, "float32"))
        >>> [tuple(z.shape) for z in latents]
        [(1, 8, 8, 6), (1, 4, 4, 12), (1, 4, 4, 12)]
        """
        images, labels = self._prepare(images, labels)
        return list(self._compiled("forward", self._forward_fn)(images, labels)[0])

    def latent_shapes(self, image_shape=None):
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
        shapes = []
        for _ in range(self.num_scales - 1):
            h, w, c = h // 2, w // 2, 2 * c
            shapes.append((h, w, c))
        shapes.append((h, w, c))
        return shapes

    def decode(self, latents, labels=None):
        """The exact inverse `f^-1`: latents (as from `encode`) back to pixel values.

        Latents that come from data decode back into [0, 256). Other latents (samples,
        interpolations) decode into the logit's full preimage, which is a little wider
        (about [-14.2, 270.2) for alpha = 0.05); nothing is clipped here.

        Differentiable with respect to the latents when the caller differentiates, like
        `log_prob` (see there): e.g. optimizing a latent for a property of its image.
        Their shapes are checked on every call, their values (finite) wherever they exist.

        Example:

        >>> import numpy as np
        >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
        >>> x = np.random.uniform(0, 256, (2, 8, 8, 1)).astype("float32")
        >>> float(np.abs(np.asarray(model.decode(model.encode(x))) - x).max()) < 1e-2
        True
        """
        # Errors in terms of the latents: the caller passed no image shape.
        latents = check_latent_list(latents, self.num_scales, self.image_shape[-1])
        labels = check_labels(labels, self.condition_dim, latents[0].shape[0])
        if labels is not None:
            labels = ops.convert_to_tensor(labels, dtype=self.compute_dtype)
        latents = [ops.convert_to_tensor(z, dtype=self._flow_policy.compute_dtype) for z in latents]
        return self._compiled("decode", self._decode_fn)(latents, labels)

    def sample_latents(self, num_samples, temperature=1.0, seed=None, image_shape=None):
        """Latents drawn from the prior `N(0, T^2 I)`, one tensor per scale.

        Example:

        >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
        >>> [tuple(z.shape) for z in model.sample_latents(3, seed=0)]
        [(3, 4, 4, 2), (3, 4, 4, 2)]
        """
        num_samples = check_count(num_samples, "num_samples")
        temperature = check_temperature(temperature)
        seed = check_seed(seed)
        shapes = self.latent_shapes(image_shape)  # checked before anything is drawn
        generator = self.sampling_seed if seed is None else keras.random.SeedGenerator(seed)
        dtype = self._flow_policy.compute_dtype
        return [temperature * keras.random.normal((num_samples, *s), dtype=dtype, seed=generator) for s in shapes]

    def sample(self, num_samples, temperature=1.0, seed=None, image_shape=None, labels=None):
        """Draw images: `z ~ N(0, T^2 I)`, `x = f^-1(z)`.

        Args:
            num_samples: how many images.
            temperature: standard deviation `T` of the prior draw (0 decodes the zero latent).
            seed: an integer for reproducible samples; `None` uses the model's generator.
            image_shape: `(H, W, C)` to sample at another size than the training one
                (the model is fully convolutional: appendix C's extrapolation).
            labels: `(num_samples, condition_dim)` for a conditional model.

        Returns:
            `(num_samples, H, W, C)` pixel values; see `decode` for their range.

        Example:

        >>> model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1)
        >>> tuple(model.sample(2, temperature=0.5, seed=3, image_shape=(16, 24, 3)).shape)
        (2, 16, 24, 3)
        """
        num_samples = check_count(num_samples, "num_samples")
        labels = check_labels(labels, self.condition_dim, num_samples)  # before the draw: errors early
        latents = self.sample_latents(num_samples, temperature, seed, image_shape)
        if labels is not None:
            labels = ops.convert_to_tensor(labels, dtype=self.compute_dtype)
        # Latents drawn here have the right shapes and are finite: no checks (each would
        # wait for the draw to finish), straight to the compiled inverse, as `decode` ends.
        return self._compiled("decode", self._decode_fn)(latents, labels)

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
            "condition_dim": self.condition_dim,
            "seed": self.seed,
        }

    # ------------------------------------------------------------- presets

    presets = _BuiltinPresets()

    @classmethod
    def from_preset(cls, preset, load_weights=True, **overrides):
        """Build a model from a preset: a local folder, a built-in name, or `hf://owner/repo`.

        A local folder always wins over a built-in name. Built-in names are listed by
        `RealNVP.presets`; a built-in preset whose weights are not published raises a
        `ValueError` that says how to get the untrained architecture
        (`load_weights=False`). `overrides` replace stored constructor arguments.
        Loading never executes code from the preset (see `keras_realnvp.presets`).

        Example:

        >>> model = RealNVP.from_preset("embedded_16")   # ships with trained weights
        >>> tuple(model.sample(2, temperature=0.7, seed=0).shape)
        (2, 16, 16, 3)
        >>> untrained = RealNVP.from_preset("celeba_64", load_weights=False, filters=4, num_blocks=1)
        >>> untrained.image_shape
        (64, 64, 3)
        """
        from keras_realnvp.presets import load_preset, read_metadata, resolve_preset

        folder = resolve_preset(preset, need_weights=load_weights)
        model = load_preset(folder, load_weights=load_weights, **overrides)
        model.preset_metadata = dict(read_metadata(folder))
        return model

    def save_to_preset(self, preset_dir, metadata=None):
        """Write a KerasHub-style preset folder (`config.json`, `metadata.json`, weights).

        Example:

        >>> import tempfile
        >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
        >>> folder = model.save_to_preset(tempfile.mkdtemp(), {"bits_per_dim": 5.0})
        >>> RealNVP.from_preset(str(folder)).filters
        4
        """
        from keras_realnvp.presets import save_preset

        return save_preset(self, preset_dir, metadata)
