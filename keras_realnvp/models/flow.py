"""What every flow of the package shares: density, bits/dim, encoding, decoding, sampling.

`Flow` holds the public methods of `RealNVP` (images) and `RealNVP2D` (vectors), written
once: the order of the checks, the conversions, the prior, how inference runs (compiled
or eager, see `keras_realnvp.backend.compiled`) and how gradients reach the caller. A
model supplies its flow (`forward_flow`, `inverse_flow`), its latent shapes and its input
checks (the hooks listed in `Flow`). `bits_per_dim_from_log_prob` is the one conversion
from nats to bits per dimension.
"""

import functools
import math

import keras
from keras import ops

from keras_realnvp.backend.compiled import compile_inference, run_inference
from keras_realnvp.models.input_checks import as_array, check_count, check_labels, check_temperature
from keras_realnvp.models.size_limits import check_seed
from keras_realnvp.tensor_types import ArrayLike, Seed, Shape, Tensor

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def bits_per_dim_from_log_prob(log_prob: ArrayLike, dims: ArrayLike) -> Tensor:
    """`-log_prob / (dims ln 2)`: a log-density in nats per example, as bits per dimension.

    `log_prob` may be a number, a NumPy array or a tensor of any backend; `dims` (values
    per example, `D`) a number or a scalar tensor. This is the paper's Table 1 unit.

    Example:

    >>> import math
    >>> round(bits_per_dim_from_log_prob(-3.5 * 3072 * math.log(2.0), 3072), 6)
    3.5
    """
    return -log_prob / (dims * math.log(2.0))


class Flow(keras.Model):
    """Base class of the flows: `log_prob`, `bits_per_dim`, `encode`, `decode`, `sample_latents`, `sample`.

    A subclass provides:

    - `forward_flow(x, labels=None, training=False)` -> `(latents, log_det)` and
      `inverse_flow(latents, labels=None)`, the flow without input checks;
    - `latent_shapes(image_shape=None)`: the per-example latent shapes, one per latent;
    - `_check_data(x)` and `_check_latents(latents)`: input checks (`input_checks`), the
      latter returning a list of arrays, one per latent;
    - `sampling_seed`, a `keras.random.SeedGenerator`; optionally `label_dim` (default
      `None`: no labels), `_flow_dtype` (default the compute dtype), and `_to_list` /
      `_from_list` when its latents are one tensor rather than a list.

    Inference runs through `keras_realnvp.backend.compiled`: compiled per input shape
    (`compiles_inference = True`) or eagerly; either way it is differentiable with respect
    to the inputs whenever the caller differentiates (see `RealNVP.log_prob` for each
    backend's rule), and a plain call keeps no graph.

    Example:

    >>> import numpy as np
    >>> from keras_realnvp import RealNVP, RealNVP2D
    >>> isinstance(RealNVP2D(num_couplings=2, filters=4), Flow)
    True
    >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
    >>> x = np.full((2, 8, 8, 1), 100.5, "float32")
    >>> bool(np.allclose(np.asarray(model.bits_per_dim(x)),
    ...                  bits_per_dim_from_log_prob(np.asarray(model.log_prob(x)), 64)))
    True
    """

    label_dim = None
    compiles_inference = True
    _data_name = "images"  # what the first argument is called in error messages

    # ------------------------------------------------------------ hooks

    def forward_flow(self, x, labels=None, training=False):
        raise NotImplementedError

    def inverse_flow(self, latents, labels=None):
        raise NotImplementedError

    def latent_shapes(self, image_shape=None):
        raise NotImplementedError

    def _check_data(self, x):
        raise NotImplementedError

    def _check_latents(self, latents):
        raise NotImplementedError

    @property
    def _flow_dtype(self):
        return self.compute_dtype

    def _to_list(self, latents):
        return list(latents)

    def _from_list(self, latents):
        return list(latents)

    # ------------------------------------------------------------ shared

    @staticmethod
    def prior_log_prob(latents: list) -> Tensor:
        """Per-example log-density of the latents (a tensor or a list) under the unit Gaussian prior.

        Example:

        >>> import numpy as np
        >>> round(float(Flow.prior_log_prob([np.zeros((1, 2), "float32")])[0]), 4)
        -1.8379
        """
        total = 0.0
        for z in latents if isinstance(latents, (list, tuple)) else [latents]:
            flat = ops.reshape(z, (ops.shape(z)[0], -1))
            total = total + ops.sum(-0.5 * ops.square(flat) - _HALF_LOG_2PI, axis=-1)
        return total

    # The inference functions behind log_prob, encode and decode: one compilation per input
    # shape, like `predict`. log_prob and encode share one, so a model used for both compiles
    # its forward pass once. They stop no gradient (see keras_realnvp.backend.compiled).

    def _inference(self, name, fn):
        if not self.compiles_inference:
            return functools.partial(run_inference, fn)
        functions = self.__dict__.setdefault("_compiled_functions", {})  # untracked by Keras
        if name not in functions:
            functions[name] = compile_inference(self, fn)
        return functions[name]

    def _forward_fn(self, x, labels):
        latents, log_det = self.forward_flow(x, labels=labels, training=False)
        return self._to_list(latents), self.prior_log_prob(latents) + log_det

    def _decode_fn(self, latents, labels):
        return self.inverse_flow(self._from_list(latents), labels=labels)

    def _labels_tensor(self, labels, batch_size):
        labels = check_labels(labels, self.label_dim, batch_size)
        return None if labels is None else ops.convert_to_tensor(labels, dtype=self.compute_dtype)

    def _prepare(self, x, labels):
        # Shapes and dtypes always; values wherever they exist (not for tracers inside a
        # caller's jax.jit / jax.vmap / tf.function). Tensors pass through as they are (the
        # dtype conversion is differentiable), so a caller's gradient reaches them.
        x = self._check_data(x)
        labels = self._labels_tensor(labels, x.shape[0])
        return ops.convert_to_tensor(x, dtype=self._flow_dtype), labels

    # ------------------------------------------------------------ public

    def log_prob(self, x: ArrayLike, labels: ArrayLike | None = None) -> Tensor:
        """Log-density `log p_X(x)` in nats, one value per example.

        Args:
            x: `RealNVP`: `(N, H, W, C)` pixel values in [0, 256) (already dequantized),
                the density is on the [0, 256)^D scale; `RealNVP2D`: `(N, dim)` points.
            labels: `(N, label_dim)` for a conditional model.

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
        >>> from keras_realnvp import RealNVP
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
        x, labels = self._prepare(x, labels)
        return self._inference("forward", self._forward_fn)(x, labels)[1]

    def bits_per_dim(self, x: ArrayLike, labels: ArrayLike | None = None) -> Tensor:
        """`-log_prob / (D ln 2)` per example (`bits_per_dim_from_log_prob`): the paper's Table 1 unit.

        Differentiable with respect to `x` when the caller differentiates, like `log_prob`.

        Example:

        >>> import numpy as np
        >>> from keras_realnvp import RealNVP
        >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
        >>> bpd = model.bits_per_dim(np.full((2, 8, 8, 1), 7.5, "float32"))
        >>> tuple(bpd.shape)
        (2,)
        """
        x = as_array(x, self._data_name)  # lists too: the shape is needed below
        log_prob = self.log_prob(x, labels)
        shape = tuple(x.shape)[1:]
        if None in shape:  # left unknown by a caller's trace (a tf.function input signature)
            dims = ops.cast(math.prod(ops.shape(x)[1:]), log_prob.dtype)
        else:
            dims = math.prod(shape)
        return bits_per_dim_from_log_prob(log_prob, dims)

    def encode(self, x: ArrayLike, labels: ArrayLike | None = None) -> list | Tensor:
        """The latents `f(x)`; differentiable like `log_prob`, a plain call keeps no graph.

        Example:

        >>> from keras_realnvp import RealNVP2D
        >>> model = RealNVP2D(num_couplings=2, filters=8)
        >>> tuple(model.encode([[0.5, -1.0], [2.0, 0.0]]).shape)
        (2, 2)
        """
        x, labels = self._prepare(x, labels)
        return self._from_list(self._inference("forward", self._forward_fn)(x, labels)[0])

    def decode(self, latents: list | ArrayLike, labels: ArrayLike | None = None) -> Tensor:
        """The exact inverse `f^-1` of `encode`; differentiable with respect to the latents like `log_prob`.

        The latents' shapes are checked on every call, their values (finite) wherever they exist.

        Example:

        >>> import numpy as np
        >>> from keras_realnvp import RealNVP2D
        >>> model = RealNVP2D(num_couplings=2, filters=8)
        >>> z = np.array([[0.1, 0.2]], "float32")
        >>> bool(np.allclose(np.asarray(model.encode(model.decode(z))), z, atol=1e-6))
        True
        """
        # Errors in terms of the latents: the caller passed no image shape.
        latents = self._check_latents(latents)
        labels = self._labels_tensor(labels, latents[0].shape[0])
        latents = [ops.convert_to_tensor(z, dtype=self._flow_dtype) for z in latents]
        return self._inference("decode", self._decode_fn)(latents, labels)

    def sample_latents(self, num_samples: int, temperature: float = 1.0, seed: Seed = None,
                       image_shape: Shape | None = None) -> list | Tensor:
        """Latents drawn from the prior `N(0, T^2 I)`, shaped as `encode` returns them.

        Args:
            num_samples: how many (a positive integer; bools, floats and arrays are refused).
            temperature: the standard deviation `T` (0 draws the zero latent).
            seed: an integer for a reproducible draw; `None` uses the model's generator.
            image_shape: the shape of one example to draw latents for (default: the model's).

        Example:

        >>> from keras_realnvp import RealNVP2D
        >>> model = RealNVP2D(num_couplings=2, filters=8)
        >>> tuple(model.sample_latents(3, seed=0).shape)
        (3, 2)
        """
        num_samples = check_count(num_samples, "num_samples")
        temperature = check_temperature(temperature)
        seed = check_seed(seed)
        shapes = self.latent_shapes(image_shape)  # checked before anything is drawn
        generator = self.sampling_seed if seed is None else keras.random.SeedGenerator(seed)
        dtype = self._flow_dtype
        draws = [temperature * keras.random.normal((num_samples, *s), dtype=dtype, seed=generator) for s in shapes]
        return self._from_list(draws)

    def sample(self, num_samples: int, temperature: float = 1.0, seed: Seed = None, image_shape: Shape | None = None,
               labels: ArrayLike | None = None) -> Tensor:
        """Draw examples: `z ~ N(0, T^2 I)`, `x = f^-1(z)`.

        Args:
            num_samples, temperature, seed, image_shape: as in `sample_latents`.
            labels: `(num_samples, label_dim)` for a conditional model.

        Example:

        >>> import numpy as np
        >>> from keras_realnvp import RealNVP2D
        >>> model = RealNVP2D(num_couplings=2, filters=8)
        >>> zero = np.asarray(model.decode([[0.0, 0.0]] * 2))
        >>> bool(np.all(np.asarray(model.sample(2, temperature=0.0)) == zero))
        True
        """
        num_samples = check_count(num_samples, "num_samples")
        labels = self._labels_tensor(labels, num_samples)  # before the draw: errors early
        latents = self._to_list(self.sample_latents(num_samples, temperature, seed, image_shape))
        # Latents drawn here have the right shapes and are finite: no checks (each would
        # wait for the draw to finish), straight to the inverse, as `decode` ends.
        return self._inference("decode", self._decode_fn)(latents, labels)
