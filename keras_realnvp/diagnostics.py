"""Numerical health checks of a `RealNVP`: round trips, log-determinants, scales, statistics.

`diagnose(model, images)` gathers, on one batch of images:

- **round trip**: `max |decode(encode(x)) - x|` in float32, in pixel levels;
- **log-determinant**: the model's `log|det df/dx|` against `slogdet` of the full
  Jacobian of `f` computed by the backend's automatic differentiation, on a small crop
  of the images. The model is fully convolutional, so the same weights run at the crop
  size; the brute force runs in float64 where the backend allows it (on JAX, with
  `jax_enable_x64`);
- **coupling scales**: the range of `s = scale * tanh(...)` of every affine coupling
  over the transformed units of the batch (`exp(s)` multiplies activations; large
  `|s|` is where float32 round trips lose precision);
- **batch-norm statistics**: min/max of the running means and variances of the
  flow's `RunningBatchNorm` layers and of the s/t networks' `BatchNormalization`;
- **extremes**: finiteness of `log_prob`/`encode` at pixel values 0 and 255 and of
  samples at high temperatures.

`format_report` turns the dict into a readable table; `keras-realnvp diagnose` runs it
for any preset. The Jacobian is the only part that needs the backend's own autodiff
(`jax.vjp`, `torch.autograd.grad`, `tf.GradientTape`): batched reverse-mode passes, each
pulling back one-hot cotangents through copies of the example.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_realnvp.backend.autodiff import float64_available, jacobian
from keras_realnvp.bijectors import AffineCoupling, RunningBatchNorm
from keras_realnvp.data.embedded import dequantize_numpy
from keras_realnvp.models.input_checks import check_images
from keras_realnvp.models.scales import spatial_rule

DEFAULT_TEMPERATURES = (1.0, 3.0, 10.0)
# The brute force takes one backward pass of batch `chunk` per `chunk` crop values, in float64.
# The 8x8x3 crop of the 2- and 3-scale presets (192 values) takes seconds on a CPU; imagenet_32
# needs 16x16x3 (768) and the 5-scale presets 32x32x3 (3072): minutes, so pass a larger limit.
DEFAULT_JACOBIAN_MAX_DIMS = 256
DEFAULT_JACOBIAN_CHUNK = 64  # Jacobian rows per backward pass


def _numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def _pixels(images, model, seed):
    images = np.asarray(images)
    check_images(images, model.image_shape[-1], model.spatial_multiple, model.min_spatial_size)
    if np.issubdtype(images.dtype, np.integer):
        return dequantize_numpy(images, seed)
    return images.astype("float32")


def _round_trip_error(model, images, labels=None) -> dict:
    """`decode(encode(x))` against `x` (float32), in pixel levels."""
    x = np.asarray(images, dtype="float32")
    latents = model.encode(x, labels)
    back = _numpy(model.decode(latents, labels))
    error = np.abs(back.astype("float64") - x)
    return {
        "max_abs_error": float(error.max()),
        "mean_abs_error": float(error.mean()),
        "finite": bool(np.all(np.isfinite(back))),
        "unit": "pixel levels",
    }


def _coupling_scale_ranges(model, images, labels=None) -> dict:
    """The range of every coupling's `s` over the units it transforms, on `images`.

    Runs the flow in inference mode, layer by layer, and records `min`/`max` of `s`
    per coupling, plus `max |scale|` (the learned bound on `|s|`).
    """
    x = ops.convert_to_tensor(np.asarray(images, dtype="float32"))
    labels = None if labels is None else ops.convert_to_tensor(np.asarray(labels, dtype="float32"))
    layers = []

    def run_chain(chain, h):
        for layer in chain.bijectors:
            if isinstance(layer, AffineCoupling):
                _, s, transformed = layer.shift_and_log_scale(h, labels)
                values = _numpy(s)[_numpy(transformed) > 0]  # the units the coupling transforms
                layers.append({
                    "name": layer.name,
                    "min": float(values.min()),
                    "max": float(values.max()),
                    "max_abs_scale_parameter": float(np.abs(_numpy(layer.scale)).max()),
                })
            h, _ = layer(h, labels=labels, training=False)
        return h

    h, _ = model.logit(x)
    for scale in model.scales():
        h = run_chain(scale.checkerboard, h)
        if not scale.is_last:
            h, _ = scale.squeeze(h)
            h = run_chain(scale.channel, h)
            _, h = scale.factor_out(h)
    low = min(layer["min"] for layer in layers)
    high = max(layer["max"] for layer in layers)
    return {"min": low, "max": high, "max_abs": max(abs(low), abs(high)), "layers": layers}


def _statistics(layers):
    if not layers:
        return {"count": 0}
    means = np.concatenate([_numpy(layer.moving_mean).ravel() for layer in layers])
    variances = np.concatenate([_numpy(layer.moving_variance).ravel() for layer in layers])
    return {
        "count": len(layers),
        "mean_min": float(means.min()),
        "mean_max": float(means.max()),
        "variance_min": float(variances.min()),
        "variance_max": float(variances.max()),
        "finite": bool(np.all(np.isfinite(means)) and np.all(np.isfinite(variances))),
    }


def _batch_norm_statistics(model) -> dict:
    """Min/max of the running means and variances: the flow's and the s/t networks'.

    `"flow"` covers the `RunningBatchNorm` bijectors (and `"updates"`, how many training
    batches they have averaged); `"networks"` the `keras.layers.BatchNormalization`
    layers inside the s/t networks.
    """
    flow, networks = [], []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, RunningBatchNorm):
            flow.append(layer)
        elif isinstance(layer, keras.layers.BatchNormalization):
            networks.append(layer)
    report = {"flow": _statistics(flow), "networks": _statistics(networks)}
    if flow:
        updates = [int(_numpy(layer.num_updates)) for layer in flow]
        report["flow"]["updates_min"], report["flow"]["updates_max"] = min(updates), max(updates)
    return report


def default_jacobian_size(num_scales: int) -> int:
    """The side of the smallest square crop >= 8 a model of `num_scales` scales accepts.

    Example:

    >>> [default_jacobian_size(n) for n in (1, 2, 3, 4, 5)]
    [8, 8, 8, 16, 32]
    """
    multiple, minimum = spatial_rule(num_scales)
    size = max(8, minimum)
    return -(-size // multiple) * multiple


def _log_det_check(model, images, size=None, labels=None, max_dims=DEFAULT_JACOBIAN_MAX_DIMS,
                   chunk=DEFAULT_JACOBIAN_CHUNK) -> dict:
    """The model's log-determinant against `slogdet` of its brute-force Jacobian, on a crop.

    The same architecture and weights are rebuilt at `size x size` (default
    `default_jacobian_size`), in float64 where the backend allows it, and compared on
    the top-left crop of each image. `"max_abs_difference"` is the largest
    `|log_det - log|det J||` (nats, float64 model); `"max_abs_difference_float32"` the
    same for the float32 model. Crops of more than `max_dims` values are skipped
    (`"skipped"` says why): the Jacobian takes one backward pass of batch `chunk` per
    `chunk` crop values.
    """
    from keras_realnvp.models.realnvp import RealNVP

    size = default_jacobian_size(model.num_scales) if size is None else int(size)
    channels = model.image_shape[-1]
    crop_shape = (size, size, channels)
    model.latent_shapes(crop_shape)  # ValueError for a size the model does not accept
    images = np.asarray(images, dtype="float32")
    if images.shape[1] < size or images.shape[2] < size:
        raise ValueError(f"The images ({images.shape[1]}x{images.shape[2]}) are smaller than the crop {size}x{size}.")
    dims = math.prod(crop_shape)
    report = {"crop": list(crop_shape), "dims": dims, "examples": int(len(images))}
    if dims > max_dims:
        report["skipped"] = (
            f"{dims} dimensions > max_dims={max_dims} (the smallest crop this architecture accepts is "
            f"{model.min_spatial_size}x{model.min_spatial_size}); raise max_dims to run it"
        )
        return report
    crop = images[:, :size, :size]
    dtype = "float64" if float64_available() else "float32"
    config = {**model.get_config(), "image_shape": list(crop_shape), "dtype": dtype}
    clone = RealNVP.from_config(config)
    clone.set_weights([np.asarray(w).astype(dtype) if np.asarray(w).dtype.kind == "f" else w
                       for w in model.get_weights()])
    clone_labels = None if labels is None else np.asarray(labels, dtype=dtype)  # in the clone's dtype

    def flat_latents(v, row):
        # `v` holds copies of one example; its label is repeated to match.
        repeated = None
        if clone_labels is not None:
            repeated = ops.convert_to_tensor(np.repeat(clone_labels[row : row + 1], v.shape[0], 0))
        latents, _ = clone.forward_flow(v, labels=repeated, training=False)
        return ops.concatenate([ops.reshape(z, (v.shape[0], -1)) for z in latents], axis=1)

    all_labels = None if clone_labels is None else ops.convert_to_tensor(clone_labels)
    _, model_log_det = clone.forward_flow(ops.convert_to_tensor(crop.astype(dtype)), labels=all_labels)
    labels32 = None if labels is None else ops.convert_to_tensor(np.asarray(labels, dtype="float32"))
    _, log_det32 = model.forward_flow(ops.convert_to_tensor(crop), labels=labels32)
    brute = []
    for row, example in enumerate(crop.astype(dtype)):
        matrix = jacobian(lambda v, row=row: flat_latents(v, row), example, chunk)
        sign, value = np.linalg.slogdet(matrix.astype("float64"))
        brute.append(float(value) if sign != 0 else float("-inf"))
    brute = np.array(brute)
    model_log_det, log_det32 = _numpy(model_log_det).astype("float64"), _numpy(log_det32).astype("float64")
    report.update(
        dtype=dtype,
        model=model_log_det.tolist(),
        model_float32=log_det32.tolist(),
        brute_force=brute.tolist(),
        max_abs_difference=float(np.abs(model_log_det - brute).max()),
        max_abs_difference_float32=float(np.abs(log_det32 - brute).max()),
    )
    return report


def _extreme_values(model, temperatures=DEFAULT_TEMPERATURES, num_samples=2, seed=0, labels=None) -> dict:
    """Finiteness at the edges: pixels all 0 / all 255 (uint8 and 255.999) and hot samples."""
    shape = (1, *model.image_shape)
    edge_labels = None if labels is None else np.asarray(labels)[:1]
    finite_log_prob, finite_encode = True, True
    for edge in (np.zeros(shape, "uint8"), np.full(shape, 255, "uint8"), np.full(shape, 255.999, "float32")):
        finite_log_prob &= bool(np.all(np.isfinite(_numpy(model.log_prob(edge, edge_labels)))))
        finite_encode &= all(bool(np.all(np.isfinite(_numpy(z)))) for z in model.encode(edge, edge_labels))
    samples = []
    for temperature in temperatures:
        sample_labels = None if labels is None else np.asarray(labels)[:1].repeat(num_samples, axis=0)
        x = _numpy(model.sample(num_samples, temperature=temperature, seed=seed, labels=sample_labels))
        finite = np.isfinite(x)
        samples.append({
            "temperature": float(temperature),
            "finite": bool(finite.all()),
            "min": float(x[finite].min()) if finite.any() else float("nan"),
            "max": float(x[finite].max()) if finite.any() else float("nan"),
        })
    return {"log_prob_finite": finite_log_prob, "encode_finite": finite_encode, "samples": samples}


def diagnose(
    model,
    images,
    labels=None,
    jacobian_size=None,
    jacobian_examples=1,
    jacobian_max_dims=DEFAULT_JACOBIAN_MAX_DIMS,
    jacobian_chunk=DEFAULT_JACOBIAN_CHUNK,
    temperatures=DEFAULT_TEMPERATURES,
    seed=0,
) -> dict:
    """All the checks of this module on one batch; a JSON-serializable dict.

    Args:
        model: a `RealNVP`.
        images: `(N, H, W, C)` at the model's channel count: integers 0..255
            (dequantized here with `dequantize_numpy(images, seed)`) or floats in [0, 256).
        labels: `(N, label_dim)` for a conditional model.
        jacobian_size: side of the square crop of the brute-force log-determinant
            (default: `default_jacobian_size(model.num_scales)`).
        jacobian_examples: how many images the brute force runs on.
        jacobian_max_dims: skip the brute force above this many crop values.
        jacobian_chunk: Jacobian rows per backward pass (the batch of that pass).
        temperatures: sampling temperatures checked for finite images.
        seed: seed of the dequantization and of the samples.

    Returns:
        `{"model", "images", "round_trip", "bits_per_dim", "log_det", "coupling_scales",
        "batch_norm", "extremes"}`:

        - `round_trip`: max and mean `|decode(encode(x)) - x|` (float32, pixel levels);
        - `log_det`: on the top-left `jacobian_size` crop of the first
          `jacobian_examples` images, the log-determinant of the same architecture and
          weights rebuilt at the crop size (float64 where available, `dtype` says) and
          of the float32 model, against `slogdet` of the brute-force Jacobian;
          `max_abs_difference` (nats) for each. Crops of more than
          `jacobian_max_dims` values are `skipped`;
        - `coupling_scales`: min/max of `s` over the transformed units, per coupling
          and overall, and each coupling's `max |scale|` (the bound on `|s|`);
        - `batch_norm`: min/max running means and variances of the flow's
          `RunningBatchNorm` (`flow`, with their update counts) and of the s/t
          networks' `BatchNormalization` (`networks`);
        - `extremes`: finite `log_prob`/`encode` at all-0 and all-255 images, and the
          finiteness and range of samples at each temperature.

    Example:

    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
    >>> pixels = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 1), dtype=np.uint8)
    >>> report = diagnose(model, pixels, jacobian_size=4, temperatures=(3.0,))
    >>> report["round_trip"]["max_abs_error"] < 1e-2, report["log_det"]["max_abs_difference"] < 1e-2
    (True, True)
    >>> print(format_report(report).splitlines()[0])  # doctest: +ELLIPSIS
    RealNVP 8x8x1, 2 scales, 4 filters, 1 blocks (... parameters)
    """
    x = _pixels(images, model, seed)
    if jacobian_examples < 1:
        raise ValueError(f"jacobian_examples must be at least 1, got {jacobian_examples}.")
    jacobian_labels = None if labels is None else np.asarray(labels)[:jacobian_examples]
    bits = _numpy(model.bits_per_dim(x, labels)).astype("float64")
    return {
        "model": {
            "image_shape": list(model.image_shape),
            "num_scales": model.num_scales,
            "filters": model.filters,
            "num_blocks": model.num_blocks,
            "parameters": int(model.count_params()),
            "backend": keras.backend.backend(),
        },
        "images": {"count": int(len(x)), "shape": list(x.shape[1:])},
        "bits_per_dim": {"mean": float(bits.mean()), "finite": bool(np.all(np.isfinite(bits)))},
        "round_trip": _round_trip_error(model, x, labels),
        "log_det": _log_det_check(model, x[:jacobian_examples], jacobian_size, jacobian_labels, jacobian_max_dims,
                                  jacobian_chunk),
        "coupling_scales": _coupling_scale_ranges(model, x, labels),
        "batch_norm": _batch_norm_statistics(model),
        "extremes": _extreme_values(model, temperatures, seed=seed, labels=labels),
    }


def _g(value):
    return f"{value + 0.0:.4g}" if isinstance(value, float) else str(value)  # no "-0"


def format_report(report: dict, title: str | None = None) -> str:
    """A readable table of a `diagnose` report (one `check | value` row each).

    Example:

    >>> print(format_report({"model": {"image_shape": [8, 8, 1], "num_scales": 2, "filters": 4,
    ...                                "num_blocks": 1, "parameters": 10}}))
    RealNVP 8x8x1, 2 scales, 4 filters, 1 blocks (10 parameters)
    """
    rows = []
    m = report["model"]
    head = (f"RealNVP {'x'.join(map(str, m['image_shape']))}, {m['num_scales']} scales, {m['filters']} filters, "
            f"{m['num_blocks']} blocks ({m['parameters']} parameters)")
    lines = [f"{title}: {head}" if title else head]
    if "round_trip" in report:
        r = report["round_trip"]
        rows.append(("images", f"{report['images']['count']} x {'x'.join(map(str, report['images']['shape']))}"))
        rows.append(("bits/dim (mean)", _g(report["bits_per_dim"]["mean"])))
        rows.append(("round trip max |x' - x| (pixel levels)", _g(r["max_abs_error"])))
        rows.append(("round trip mean |x' - x| (pixel levels)", _g(r["mean_abs_error"])))
    if "log_det" in report:
        d = report["log_det"]
        crop = "x".join(map(str, d["crop"]))
        if "skipped" in d:
            rows.append((f"log-det vs brute force ({crop} crop)", f"skipped: {d['skipped']}"))
        else:
            rows.append((f"log-det, model ({crop} crop, {d['dtype']})", ", ".join(_g(v) for v in d["model"])))
            rows.append(("log-det, brute-force slogdet", ", ".join(_g(v) for v in d["brute_force"])))
            rows.append((f"  max |difference| ({d['dtype']} / float32 model)",
                         f"{_g(d['max_abs_difference'])} / {_g(d['max_abs_difference_float32'])}"))
    if "coupling_scales" in report:
        s = report["coupling_scales"]
        widest = max(s["layers"], key=lambda layer: max(abs(layer["min"]), abs(layer["max"])))
        rows.append((f"coupling s range ({len(s['layers'])} couplings)", f"[{_g(s['min'])}, {_g(s['max'])}]"))
        rows.append(("  widest coupling", f"{widest['name']}: [{_g(widest['min'])}, {_g(widest['max'])}]"))
    if "batch_norm" in report:
        for part, label in (("flow", "flow batch norm"), ("networks", "s/t net batch norm")):
            b = report["batch_norm"][part]
            if b["count"]:
                rows.append((f"{label} means ({b['count']} layers)", f"[{_g(b['mean_min'])}, {_g(b['mean_max'])}]"))
                rows.append((f"{label} variances", f"[{_g(b['variance_min'])}, {_g(b['variance_max'])}]"))
        if "updates_min" in report["batch_norm"]["flow"]:
            b = report["batch_norm"]["flow"]
            rows.append(("flow batch norm updates", f"{b['updates_min']}..{b['updates_max']}"))
    if "extremes" in report:
        e = report["extremes"]
        rows.append(("log_prob / encode finite at pixels 0, 255", f"{e['log_prob_finite']} / {e['encode_finite']}"))
        for sample in e["samples"]:
            rows.append((f"samples at T={_g(sample['temperature'])}: finite, range",
                         f"{sample['finite']}, [{_g(sample['min'])}, {_g(sample['max'])}]"))
    if "failures" in report:
        rows.append(("verdict", "; ".join(report["failures"]) or "ok"))
    width = max((len(name) for name, _ in rows), default=0)
    lines += [f"  {name.ljust(width)} | {value}" for name, value in rows]
    return "\n".join(lines)
