"""The `keras-realnvp benchmark` command's parts: one concept per module.

- `machine`: the machine (CPU, cores, load) and its float32 / bfloat16 matrix-multiply speed,
  and a process's peak resident memory;
- `subjects`: what is timed: `keras_realnvp.RealNVP` on the current backend, or the plain-PyTorch
  baseline (`keras_realnvp.backend.torch_baseline`) of the same preset's architecture;
- `measure`: warm-up, rounds of timed steps, their summary, one run in one process, and the
  training-quality check;
- `compare`: the baseline and the backends in worker processes taking turns round by round;
- `report`: the text and markdown tables;
- `data_loading`: data loading and streaming speed (a separate benchmark, on its own data);
- `optimizer_step`: one optimizer update of a preset's weights, the training optimizer against
  Keras' Adam and the baseline's (a separate benchmark).

Nothing here imports a backend: what differs per backend is in `keras_realnvp.backend.devices`.

Example:

>>> from keras_realnvp.benchmarks import subjects
>>> subjects.architecture("embedded_16")
{'image_shape': (16, 16, 3), 'num_scales': 2, 'filters': 32, 'num_blocks': 1}
"""
