"""What the benchmark asks of the backend's devices: waiting for them, naming them, their memory.

Timing a step needs its work finished (JAX and CUDA run asynchronously), a report needs the
framework and device a run used, and the memory figure of a training step needs each
framework's own accounting. Each is one function here, for the backend in use
(`keras.backend.backend()`), importing that backend lazily.

Example:

>>> import keras
>>> description = device_description()
>>> description["backend"] == keras.backend.backend()
True
>>> tuple(synchronize(keras.ops.ones((2,))).shape)
(2,)
"""

import os

import keras


def synchronize(value=None):
    """Wait until the device has computed `value` (or, on PyTorch and CUDA, everything queued); returns it.

    JAX dispatches asynchronously (`jax.block_until_ready`), CUDA kernels too
    (`torch.cuda.synchronize`); TensorFlow's eager results and every CPU result are ready
    when returned.

    Example:

    >>> import numpy as np
    >>> float(np.asarray(synchronize(keras.ops.sum(keras.ops.ones((3,))))))
    3.0
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return value if value is None else jax.block_until_ready(value)
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
    return value


def device_description() -> dict:
    """The backend, its framework's version, the device it computes on and, for a GPU, its name and memory.

    Example:

    >>> info = device_description()
    >>> sorted(key for key in info if key in ("backend", "device", "framework"))
    ['backend', 'device', 'framework']
    """
    backend = keras.backend.backend()
    info = {"backend": backend}
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        info.update(framework=f"jax {jax.__version__}", device=str(device.platform))
        info["xla_flags"] = os.environ.get("XLA_FLAGS", "")
        if device.platform != "cpu":
            info["device_name"] = getattr(device, "device_kind", str(device))
            limit = (device.memory_stats() or {}).get("bytes_limit")
            if limit:
                info["device_memory_gib"] = round(limit / 2**30, 1)
    elif backend == "torch":
        import torch

        info.update(framework=f"torch {torch.__version__}", device="cuda" if torch.cuda.is_available() else "cpu")
        if torch.cuda.is_available():
            properties = torch.cuda.get_device_properties(0)
            info["device_name"] = properties.name
            info["device_memory_gib"] = round(properties.total_memory / 2**30, 1)
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        info.update(framework=f"tensorflow {tf.__version__}", device="gpu" if gpus else "cpu")
        if gpus:
            info["device_name"] = tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
    else:
        info.update(framework=backend, device="cpu")
    return info


def training_step_memory(model, pixels, train_step):
    """Memory one training step needs beyond what is resident before it: `(bytes, how measured)`, or None.

    Each framework's own accounting where a CPU process's resident memory would mislead:
    XLA keeps its buffers between steps (so for JAX on a CPU this is the compiled step's
    temporary buffers, from XLA's buffer assignment of `model.train_step` on `pixels` with
    the state donated, as Keras' trainer compiles it) and
    TensorFlow's allocator keeps a pool (its statistics). On a GPU, the allocator's peak
    during `train_step()` (which runs one step) minus what was in use before it. None for
    PyTorch on a CPU: measure the process's resident memory instead
    (`keras_realnvp.benchmarks.machine.ResidentMemory`).

    Example:

    >>> import numpy as np
    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 3), num_scales=1, filters=4, num_blocks=1)
    >>> model.compile(optimizer="adam")
    >>> pixels = np.zeros((2, 8, 8, 3), "uint8")
    >>> step = lambda: model.train_on_batch(pixels)
    >>> measured = training_step_memory(model, pixels, step)
    >>> measured is None or measured[0] >= 0
    True
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform == "cpu":
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            state = (
                [v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables],
                [v.value for v in model.optimizer.variables],
                [v.value for v in model.metrics_variables],
            )
            data = (jax.numpy.asarray(pixels), None, None)
            # Donated, as Keras' trainer compiles it: the new state then takes the old one's
            # buffers, and the temporary buffers are all the step adds (without donation XLA
            # reports fewer temporaries but allocates a second state as output).
            step = jax.jit(model.train_step, donate_argnums=0)
            analysis = step.lower(state, data).compile().memory_analysis()
            return analysis.temp_size_in_bytes, "XLA buffer assignment: temporary buffers of the step"
        before = (device.memory_stats() or {}).get("bytes_in_use", 0)
        train_step()
        peak = (device.memory_stats() or {}).get("peak_bytes_in_use", 0) - before
        return peak, "device allocator: peak minus in use before the step"
    if backend == "torch":
        return cuda_step_memory(train_step)
    if backend == "tensorflow":
        import tensorflow as tf

        device = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
        tf.config.experimental.reset_memory_stats(device)
        before = tf.config.experimental.get_memory_info(device)["current"]
        train_step()
        peak = tf.config.experimental.get_memory_info(device)["peak"] - before
        return peak, f"TensorFlow allocator ({device}): peak minus in use before the step"
    return None


def cuda_step_memory(step):
    """PyTorch's CUDA allocator: peak during `step()` minus in use before it, `(bytes, how)`; None without CUDA.

    Example:

    >>> result = cuda_step_memory(lambda: None)
    >>> result is None or result[0] >= 0
    True
    """
    import torch

    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before, "CUDA allocator: peak minus in use before the step"
