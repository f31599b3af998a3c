"""How long one optimizer update of a preset's weights takes: the training optimizer against Keras' Adam.

`python -m keras_realnvp.benchmarks.optimizer_step --preset cifar10` builds the preset's
architecture on the current backend, gives every trainable variable a random gradient and
times one `apply` (the global-norm clip at 100 and Adam's update) of:

- `GlobalBatchAdam`, the optimizer of `keras-realnvp train` (fused kernels on TensorFlow and
  PyTorch: `keras_realnvp.backend.adam`, `keras_realnvp.backend.gradient_clip`);
- `keras.optimizers.Adam`, Keras' own;
- on PyTorch, the plain-PyTorch baseline's update (`clip_grad_norm_` and `torch.optim.Adam` with
  `foreach=True`, as `keras-realnvp benchmark` trains it).

The updates run eagerly, as the PyTorch backend runs them in training; TensorFlow and JAX
compile the update into the training step instead, where this eager figure does not apply.
Medians of `--repeats` updates after two untimed ones, in milliseconds.
"""

import argparse
import functools
import json
import statistics
import time


def _median_ms(fn, repeats: int) -> float:
    from keras_realnvp.backend.devices import synchronize

    fn()
    fn()
    times = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        fn()
        synchronize()
        times.append(1000 * (time.perf_counter() - start))
    return round(statistics.median(times), 1)


def update_times(preset: str = "cifar10", repeats: int = 5) -> dict:
    """Milliseconds of one optimizer update of `preset`'s trainable weights on the current backend.

    Example:

    >>> result = update_times("embedded_16", repeats=1)
    >>> sorted(k for k in result if k.endswith("_ms"))[:2]
    ['GlobalBatchAdam_ms', 'keras_Adam_ms']
    """
    import keras
    import numpy as np

    from keras_realnvp.benchmarks.machine import machine_description
    from keras_realnvp.benchmarks.subjects import architecture
    from keras_realnvp.models.realnvp import RealNVP
    from keras_realnvp.training.optimizer import GlobalBatchAdam

    arch = architecture(preset)
    model = RealNVP(**arch, seed=0)
    model.build((None, *arch["image_shape"]))
    shapes = [tuple(v.shape) for v in model.trainable_variables]
    rng = np.random.default_rng(0)
    grads = [keras.ops.convert_to_tensor(rng.normal(size=s).astype("float32")) for s in shapes]
    result = {
        "preset": preset,
        "backend": keras.backend.backend(),
        "cpu": machine_description()["cpu"],
        "variables": len(shapes),
        "parameters": int(sum(np.prod(s) for s in shapes)),
    }
    for name, make in (("GlobalBatchAdam", GlobalBatchAdam), ("keras_Adam", keras.optimizers.Adam)):
        variables = [keras.Variable(v) for v in model.trainable_variables]
        optimizer = make(1e-3, global_clipnorm=100.0)
        optimizer.build(variables)
        result[f"{name}_ms"] = _median_ms(functools.partial(optimizer.apply, grads, variables), repeats)
    if keras.backend.backend() == "torch":
        from keras_realnvp.backend.torch_baseline_runner import Runner

        runner = Runner(**arch, device="cpu")
        result["torch_baseline_ms"] = _median_ms(runner.update_step, repeats)
    return result


def main(argv=None) -> dict:
    """Print `update_times` of the command line's preset as one JSON line; returns it.

    Example:

    >>> main(["--preset", "embedded_16", "--repeats", "1"])["preset"]  # doctest: +ELLIPSIS
    {...}
    'embedded_16'
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cifar10", help="a built-in preset's architecture")
    parser.add_argument("--repeats", type=int, default=5, help="timed updates (the median is reported)")
    args = parser.parse_args(argv)
    result = update_times(args.preset, args.repeats)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
