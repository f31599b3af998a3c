"""The paper's training objective of a `RealNVP` (section 4.1): NLL in nats plus an L2 penalty.

`TrainingObjective` is the part of `RealNVP` that `fit` sees: the loss (mean negative
log-likelihood in nats per image plus `l2_scale` times the sum of the squared weight-scale
parameters), the bits/dim metric, the penalty's variables, and `compile` with the
optimizer built at once. It expects of the model: `scales()`, `l2_scale`, `bn_mode`,
`_bits_per_dim_tracker` (a `keras.metrics.Mean`) and `_split_inputs`.
"""

import math

import keras
from keras import ops

from keras_realnvp.backend import replicas
from keras_realnvp.backend.autodiff import release_gradients
from keras_realnvp.bijectors import AffineCoupling
from keras_realnvp.models.flow import bits_per_dim_from_log_prob


class TrainingObjective:
    """Mixin of `RealNVP`: the authors' loss, its L2 penalty, the bits/dim metric, `compile`.

    Example:

    >>> import keras
    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
    >>> isinstance(model, TrainingObjective), model.training_objective()["l2_scale"]
    (True, 5e-05)
    """

    def weight_scale_variables(self):
        """The parameters the paper's L2 penalty applies to (§4.1).

        Exactly those the authors' code penalizes (variables named `magnitude` or
        `rescaling_scale`): the weight-norm magnitudes `g` of the s/t networks' skip,
        second-block and head convolutions (`CouplingResNet.weight_scale_variables`), and
        the `scale` of every coupling's `s = scale * tanh(...)`.

        Example:

        >>> from keras_realnvp import RealNVP
        >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
        >>> len(model.weight_scale_variables())  # 10 couplings x (2 skips, 1 conv_b, head, scale)
        50
        """
        variables = []
        for scale in self.scales():
            for chain in scale.chains:
                for layer in chain.bijectors:
                    if isinstance(layer, AffineCoupling):
                        variables += [*layer.net.weight_scale_variables(), layer.scale]
        return variables

    def l2_penalty(self):
        """`sum g^2` over `weight_scale_variables()`: the penalty `l2_scale` multiplies.

        Example:

        >>> from keras_realnvp import RealNVP
        >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
        >>> # At initialization: every g is 1, the heads' 0.1, the coupling scales 0.
        >>> round(float(keras.ops.convert_to_numpy(model.l2_penalty())), 2)
        204.34
        """
        return sum(ops.sum(ops.square(v)) for v in self.weight_scale_variables())

    def training_objective(self):
        """In words, what `fit` minimizes and what it reports; written into preset metadata.

        Example:

        >>> from keras_realnvp import RealNVP
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

    def train_step(self, *args, **kwargs):
        """Keras' training step, then (PyTorch) the weights' gradients are released.

        Keras' PyTorch trainer would keep them until after the next step's forward pass, a
        weights-sized buffer on top of that pass's activations, where memory peaks
        (`keras_realnvp.backend.autodiff.release_gradients`). On TensorFlow and JAX this is
        Keras' step unchanged.

        Example:

        >>> import numpy as np
        >>> from keras_realnvp import RealNVP
        >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=1, filters=4, num_blocks=1)
        >>> model.compile(optimizer="adam")
        >>> logs = model.train_on_batch(np.random.uniform(0, 256, (4, 8, 8, 1)), return_dict=True)
        >>> [getattr(v.value, "grad", None) for v in model.trainable_variables][:2]
        [None, None]
        """
        logs = super().train_step(*args, **kwargs)
        release_gradients(self.trainable_weights)
        return logs

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        images, _ = self._split_inputs(x)
        self._bits_per_dim_tracker.update_state(bits_per_dim_from_log_prob(y_pred, math.prod(images.shape[1:])))
        return self.get_metrics_result()

    def compile(self, *args, **kwargs):
        """`keras.Model.compile`, and the optimizer's variables are created at once.

        The model is built when it is constructed, so its optimizer can be too. Keras
        would otherwise create the optimizer's slots while tracing the first training
        step, which on TensorFlow makes `tf.function` trace that step twice (once to
        create the variables, once to use them). Same arguments as `keras.Model.compile`.

        Example:

        >>> import keras
        >>> from keras_realnvp import RealNVP
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
        >>> from keras_realnvp import RealNVP
        >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
        >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> other = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
        >>> other.compile_from_config(model.get_compile_config())
        >>> round(float(other.optimizer.learning_rate), 6), other.optimizer.built
        (0.001, True)
        """
        self.compile(**keras.saving.deserialize_keras_object(config))
