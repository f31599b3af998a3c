"""The optimizer of a training run: Adam whose gradient clip sees the global batch."""

import keras

from keras_realnvp.backend import replicas


@keras.saving.register_keras_serializable(package="keras_realnvp")
class GlobalBatchAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose `global_clipnorm` clips the global batch's gradient.

    The same as Adam on one device. Under a `tf.distribute` strategy Keras clips each
    replica's share of the gradient by that share's norm before the shares are summed, so
    with a clip that engages (the authors' 100 on the nats-per-image loss does at every
    step) the update would depend on the number of devices; this one clips the sum
    (`keras_realnvp.backend.replicas.clip_by_global_norm`). JAX's `DataParallel` needs nothing:
    its step sees the global gradient. Same arguments as `keras.optimizers.Adam`.

    Example:

    >>> optimizer = GlobalBatchAdam(learning_rate=1e-3, global_clipnorm=100.0)
    >>> optimizer.global_clipnorm
    100.0
    """

    def _clip_gradients(self, grads):
        if self.global_clipnorm and self.global_clipnorm > 0 and replicas.num_replicas() > 1:
            return replicas.clip_by_global_norm(grads, self.global_clipnorm)
        return super()._clip_gradients(grads)
