"""The one package that imports a backend (TensorFlow, JAX or PyTorch: the one in use).

Everything else in `keras_realnvp` is written in `keras.ops` and `keras.random`. What
`keras.ops` cannot express lives here, each behind one function, with a `keras.ops`
reference or an equivalent on every backend:

- `compiled`: inference compiled per backend (`jax.jit`, `tf.function`, `torch.no_grad`),
  and whether the caller is differentiating (a traced value, a tensor that requires grad);
- `replicas`: the device scope of data-parallel training and `tf.distribute` reductions,
  including undoing a non-finite step on all replicas at once;
- `autodiff`: the brute-force Jacobian through the backend's reverse mode, and float64.

Example:

>>> from keras_realnvp.backend import autodiff, compiled, replicas
>>> replicas.num_replicas()
1
"""
