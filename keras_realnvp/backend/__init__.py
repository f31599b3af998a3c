"""The one package that imports a backend (TensorFlow, JAX or PyTorch: the one in use).

Everything else in `keras_realnvp` is written in `keras.ops` and `keras.random`. What
`keras.ops` cannot express lives here, each behind one function, with a `keras.ops`
reference or an equivalent on every backend:

- `compiled`: inference compiled per backend (`jax.jit`, `tf.function`, `torch.no_grad`),
  and whether the caller is differentiating (a traced value, a tensor that requires grad);
- `replicas`: the device scope of data-parallel training and `tf.distribute` reductions,
  including undoing a non-finite step on all replicas at once;
- `autodiff`: the brute-force Jacobian through the backend's reverse mode, and float64;
- `batch_norm`: per-channel batch normalization through PyTorch's fused kernel, the
  `keras.ops` reference on the other backends (tested equal in values and gradients);
- `adam` and `gradient_clip`: the training optimizer's update (TensorFlow's and PyTorch's fused
  Adam kernels) and its global-norm clip (PyTorch's multi-tensor kernels), Keras' formulas on
  the other backends (tested equal step after step);
- `fused_conv`: a convolution with its bias (added by oneDNN) and a residual sum and a ReLU in
  place on PyTorch where no gradient is recorded (evaluation, sampling), the `keras.ops`
  reference elsewhere (tested equal);
- `weight_norm`: the weight norm's kernel `g * v / ||v||` through PyTorch's fused kernel, the
  `keras.ops` reference on the other backends (tested equal in values and gradients);
- `vector_math`: on PyTorch, MKL's vector math (`log`, `exp`, `tanh`) initialized by one
  single-threaded call when `keras_realnvp` is imported: torch 2.13.0's first call, when it
  runs on two threads, can return part of its result wrong;
- `compilation_cache`: JAX's persistent compilation cache, which the commands (not the
  benchmark, not the library) turn on;
- `devices`: what the benchmark asks of the devices: waiting for them (`synchronize`), naming
  them (`device_description`) and each framework's memory accounting of a training step.

And one module that is PyTorch by nature rather than a backend's share of the library:
`torch_baseline` (with `torch_baseline_runner`), the plain-PyTorch Real NVP that
`keras-realnvp benchmark` measures the package against. It is a benchmark baseline, not library
code; nothing else imports it.

Example:

>>> from keras_realnvp.backend import autodiff, compiled, replicas
>>> replicas.num_replicas()
1
"""
