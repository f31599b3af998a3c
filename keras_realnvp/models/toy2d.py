"""Real NVP on vectors: the 2-D toy of figure 1, built from the image model's coupling layer."""

import keras
import numpy as np
from keras import ops

from keras_realnvp.bijectors.affine_coupling import AffineCoupling
from keras_realnvp.config_migration import VECTOR_NETWORK_RENAMES, rename_old_keys
from keras_realnvp.models.flow import Flow
from keras_realnvp.models.input_checks import check_count, check_vectors
from keras_realnvp.models.size_limits import check_toy_model_size

# The configuration of the README's figure-1 picture and of tests/models/test_toy2d.py: trains on
# two moons in a few seconds on a CPU.
TOY_2D_CONFIG = {"dim": 2, "num_couplings": 6, "filters": 64, "num_blocks": 1}


@keras.saving.register_keras_serializable(package="keras_realnvp")
class RealNVP2D(Flow):
    """A Real NVP on vectors `(batch, dim)`: a stack of `AffineCoupling` layers, unit Gaussian prior.

    The same coupling layer as `RealNVP` (eq. 9, `s = scale * tanh(.)`), given rank-2
    input: its masks run over the feature index (`"checkerboard"`: odd / even features
    alternately; `"channel"`: first / second half) and its s/t network is a small MLP
    (`CouplingMLP`). Consecutive couplings use complementary masks. No logit, no
    squeezing, no batch normalization: the data are real vectors used as they are.

    `TOY_2D_CONFIG` is the small configuration of figure 1's toy:
    `RealNVP2D(**TOY_2D_CONFIG)`.

    Training: `compile(optimizer=...)` then `fit(points)`; the loss is the mean negative
    log-likelihood in nats per point.

    `log_prob`, `bits_per_dim`, `encode`, `decode`, `sample_latents` and `sample` are
    `Flow`'s, as for `RealNVP`; the latents are one tensor `(batch, dim)`, and no labels are
    taken. They run eagerly (a compilation per batch shape costs more than these small
    networks) and are differentiable with respect to their input whenever the caller
    differentiates, with the same rules as `RealNVP.log_prob` (a torch tensor that requires
    grad, a JAX transformation, a `tf.GradientTape`); a plain call keeps no graph
    (`keras_realnvp.backend.compiled.run_inference`).

    Args:
        dim: number of features (2 for the toy).
        num_couplings: coupling layers (at least 2, so that every feature is transformed).
        filters: hidden units of each Dense layer of the s/t MLPs (`RealNVP`'s `filters`: the
            width of the s/t network).
        num_blocks: hidden layers of each MLP after the first (`RealNVP`'s `num_blocks`: the
            depth of the s/t network).
        mask_type: `"checkerboard"` or `"channel"` (identical partitions when `dim` is 2).
        seed: seed of the sampling generator, an integer in `[0, 2^31 - 1)`, or `None`.

    The settings are checked before anything is built (integers, and the size limits of
    `keras_realnvp.models.size_limits`).

    Example:

    >>> import numpy as np
    >>> model = RealNVP2D(dim=2, num_couplings=4, filters=16, num_blocks=1)
    >>> x = np.random.default_rng(0).normal(size=(5, 2)).astype("float32")
    >>> tuple(model.log_prob(x).shape), tuple(model.encode(x).shape)
    ((5,), (5, 2))
    >>> float(np.abs(np.asarray(model.decode(model.encode(x))) - x).max()) < 1e-5
    True
    >>> tuple(model.sample(3, temperature=0.5, seed=0).shape)
    (3, 2)
    """

    def __init__(
        self,
        dim: int = 2,
        num_couplings: int = 6,
        filters: int = 64,
        num_blocks: int = 1,
        mask_type: str = "checkerboard",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # Types, ranges and the size limits (keras_realnvp.models.size_limits) before any layer
        # exists: an oversized setting would otherwise build for hours or hit the allocator.
        size = check_toy_model_size(dim, num_couplings, filters, num_blocks, mask_type, seed)
        self.dim = size.dim
        self.num_couplings = size.num_couplings
        self.filters = size.filters
        self.num_blocks = size.num_blocks
        self.mask_type = mask_type
        self.seed = size.seed
        self.couplings = [
            AffineCoupling(
                mask_type,
                reverse=bool(i % 2),
                filters=self.filters,
                num_blocks=self.num_blocks,
                dtype=self.dtype_policy,
                name=f"coupling_{i}",
            )
            for i in range(self.num_couplings)
        ]
        self.sampling_seed = keras.random.SeedGenerator(self.seed, name="sampling_seed")
        self.build((None, self.dim))

    def build(self, input_shape):
        for coupling in self.couplings:
            coupling.build(tuple(input_shape))
        self.built = True

    def forward_flow(self, x, labels=None, training=False):
        """`f(x)`: points to `(z, log|det df/dx|)`, no input checks (`labels` is unused)."""
        log_det = 0.0
        for coupling in self.couplings:
            x, ld = coupling(x, labels=labels, training=training)
            log_det = log_det + ld
        return x, log_det

    def inverse_flow(self, z, labels=None):
        """`f^-1(z)`, no input checks (`labels` is unused)."""
        for coupling in reversed(self.couplings):
            z = coupling.inverse(z, labels=labels)
        return z

    def call(self, x, training=False):
        """Per-point log-likelihood in nats."""
        z, log_det = self.forward_flow(x, training=training)
        return self.prior_log_prob(z) + log_det

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = -ops.mean(y_pred)
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss

    def latent_shapes(self, image_shape=None):
        """`[(dim,)]`: one latent per point, of the points' shape (`image_shape`, if given, must be that).

        Example:

        >>> RealNVP2D(dim=3, num_couplings=2, filters=4).latent_shapes()
        [(3,)]
        """
        if image_shape is not None and tuple(image_shape) != (self.dim,):
            raise ValueError(f"This model draws points of shape ({self.dim},), got image_shape={image_shape!r}.")
        return [(self.dim,)]

    # Flow's hooks: points and latents are `(batch, dim)` vectors, the latents one tensor.

    compiles_inference = False
    _data_name = "points"

    def _check_data(self, points):
        return check_vectors(points, self.dim, "points")

    def _check_latents(self, latents):
        return [check_vectors(latents, self.dim, "latents")]

    def _to_list(self, z):
        return [z]

    def _from_list(self, latents):
        return latents[0]

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "num_couplings": self.num_couplings,
            "filters": self.filters,
            "num_blocks": self.num_blocks,
            "mask_type": self.mask_type,
            "seed": self.seed,
        }

    # Config keys written under an older name, `{old: new}` (keras_realnvp.config_migration).
    renamed_config_keys = VECTOR_NETWORK_RENAMES

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> "RealNVP2D":
        """The model a config describes; a config written before a rename (`units`, `num_layers`) loads too.

        Example:

        >>> RealNVP2D.from_config({"num_couplings": 2, "units": 8, "num_layers": 0}).get_config()["filters"]
        8
        """
        return super().from_config(rename_old_keys(config, cls.renamed_config_keys), custom_objects)


def two_moons(num_points: int, noise: float = 0.05, seed: int | None = None) -> np.ndarray:
    """Two interleaving half circles, centred and scaled: figure 1's kind of toy data (no sklearn).

    Half of the points (rounded up) lie on the upper moon `(cos t, sin t)`, the rest
    on the lower one `(1 - cos t, 0.5 - sin t)`, `t` uniform in [0, pi], plus Gaussian
    noise of standard deviation `noise`; the points are then shifted by `(-0.5, -0.25)`
    and scaled by `(1 / 0.87, 1 / 0.5)`, about unit variance per coordinate.

    Args:
        num_points: how many points.
        noise: standard deviation of the Gaussian noise (before scaling).
        seed: seed of `numpy.random.default_rng`.

    Returns:
        A float32 array of shape `(num_points, 2)`, shuffled.

    Example:

    >>> points = two_moons(1000, seed=0)
    >>> points.shape, points.dtype
    ((1000, 2), dtype('float32'))
    >>> bool(np.all(np.abs(points.std(axis=0) - 1.0) < 0.1))
    True
    """
    num_points = check_count(num_points, "num_points")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise}.")
    rng = np.random.default_rng(seed)
    upper = (num_points + 1) // 2
    t = rng.uniform(0.0, np.pi, num_points)
    x = np.where(np.arange(num_points) < upper, np.cos(t), 1.0 - np.cos(t))
    y = np.where(np.arange(num_points) < upper, np.sin(t), 0.5 - np.sin(t))
    points = np.stack([x, y], axis=-1) + rng.normal(0.0, noise, (num_points, 2))
    points = (points - [0.5, 0.25]) / [0.87, 0.5]
    return rng.permutation(points).astype(np.float32)
