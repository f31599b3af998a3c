"""Numerical health of a preset: round trip, log-det vs brute force, coupling scales, batch norm.

For a preset (a built-in name such as cifar10 or embedded_16, a preset folder, or
hf://owner/repo) this runs keras_realnvp.diagnostics.diagnose on one batch of images,
once for the untrained architecture (load_weights=False, "init") and once with the
trained weights where the preset has them ("trained"), and prints a table per model
(or, with --json, one JSON record):

  round trip     max and mean |decode(encode(x)) - x| in float32, in pixel levels
  log-det        the model's log|det df/dx| on a small crop (the model is fully
                 convolutional: the same weights run at the crop size) against slogdet
                 of the full Jacobian from the backend's autodiff, in float64 (on JAX
                 this tool turns on jax_enable_x64); the float32 model's difference too
  coupling s     min/max of s = scale * tanh(...) over every coupling's transformed units
  batch norm     min/max running means and variances, flow (RunningBatchNorm) and s/t
                 networks (BatchNormalization)
  extremes       finite log_prob / encode at all-0 and all-255 images; finite samples at
                 each --temperatures value, with their range

Images: the held-out embedded photo patches at the model's size (offline, no download)
unless --dataset names an image folder or Hub dataset (read as the preset's metadata
says). A conditional model gets one-hot label vectors, cycling over its condition_dim.
At initialization every coupling scale is 0 and the statistics are 1 and 0; pass
--calibrate N (N training-mode passes over the batch, which set the batch-norm
statistics as the first training step does) and --perturb STD (Gaussian noise on every
trainable weight) to look at a model that has moved away from the identity, or
--train-steps N to train the initialized model first: N Adam steps (learning rate 1e-3,
gradient norm clipped at 100, as the train tool) on the embedded training patches at the
model's size, batch --train-batch-size, with a progress bar (a conditional model gets each
patch's photo, one-hot, in its first label entries).

    python tools/diagnose.py embedded_16
    python tools/diagnose.py cifar10 --batch-size 4 --json
    python tools/diagnose.py celeba_64 --weights init --jacobian-max-dims 4096
    python tools/diagnose.py runs/default/preset --calibrate 1 --perturb 0.05
    python tools/diagnose.py imagenet_64 --weights init --train-steps 30 --jacobian-max-dims 3072

The exit status is 1 if a check failed outright (non-finite values, a round-trip error
above --max-round-trip-error pixel levels, or a log-det off by more than
--max-log-det-error nats), else 0.
"""

import argparse
import json
import sys
from pathlib import Path

# Run from a checkout without installing: the package lives next to tools/.
_ROOT = Path(__file__).resolve().parents[1]
if (_ROOT / "keras_realnvp").is_dir() and str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def _non_negative_float(text):
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _temperatures(text):
    try:
        values = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers, got {text}") from None
    if not values or not all(v >= 0 for v in values):
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers >= 0, got {text}")
    return values


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="diagnose.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("preset", help="built-in name, preset folder or hf://owner/repo")
    parser.add_argument("--weights", choices=("auto", "init", "trained"), default="auto",
                        help="init: load_weights=False; trained: the preset's weights; auto (default): init, "
                             "and trained too where the preset has weights")
    parser.add_argument("--dataset", default=None,
                        help="'embedded' (default: held-out photo patches at the model's size), an image folder "
                             "or a Hub id")
    parser.add_argument("--batch-size", type=_positive_int, default=8, help="images in the batch (default: 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dequantization, samples and --perturb")
    parser.add_argument("--calibrate", type=_non_negative_int, default=0,
                        help="training-mode passes over the batch before the checks (init model only; default 0)")
    parser.add_argument("--perturb", type=_non_negative_float, default=0.0,
                        help="std of Gaussian noise added to the init model's trainable weights (default 0)")
    parser.add_argument("--train-steps", type=_non_negative_int, default=0,
                        help="Adam steps on the embedded training patches before the checks (init model only; "
                             "default 0)")
    parser.add_argument("--train-batch-size", type=_positive_int, default=8,
                        help="batch of --train-steps (default: 8)")
    parser.add_argument("--jacobian-size", type=_positive_int, default=None,
                        help="side of the brute-force crop (default: the smallest >= 8 the model accepts)")
    parser.add_argument("--jacobian-examples", type=_positive_int, default=1,
                        help="images the brute force runs on (default: 1)")
    parser.add_argument("--jacobian-max-dims", type=_positive_int, default=None,
                        help="skip the brute force above this many crop values (default: 256)")
    parser.add_argument("--jacobian-chunk", type=_positive_int, default=None,
                        help="Jacobian rows per backward pass, the batch of that pass (default: 64)")
    parser.add_argument("--temperatures", type=_temperatures, default=(1.0, 3.0, 10.0),
                        help="comma-separated sampling temperatures (default: 1,3,10)")
    parser.add_argument("--max-round-trip-error", type=_non_negative_float, default=1e-2,
                        help="round-trip error in pixel levels counted as a failure (default: 0.01)")
    parser.add_argument("--max-log-det-error", type=_non_negative_float, default=1e-3,
                        help="float64 log-det difference in nats counted as a failure (default: 0.001)")
    parser.add_argument("--json", action="store_true", help="print one JSON record instead of tables")
    return parser.parse_args(argv)


def _check_embedded_size(model, hint):
    """The model's side if embedded patches fit it (square, even, at most 128), else a ValueError."""
    height, width, _ = model.image_shape
    if height != width or height > 128 or height % 2:
        raise ValueError(
            f"The embedded patches are square, even and at most 128 pixels; this model takes {height}x{width}. {hint}"
        )
    return height


def _images(model, args):
    import numpy as np

    from keras_realnvp.data.preprocessing import to_array

    spec = getattr(model, "preset_metadata", {}).get("dataset", {})
    height, width, channels = model.image_shape
    if args.dataset in (None, "embedded"):
        from keras_realnvp.data.embedded import load_embedded_patches

        _check_embedded_size(model, "Pass --dataset.")
        patches = load_embedded_patches("test", patch_size=height)
        # Evenly spread over the held-out patches: both photos, several regions.
        picks = np.linspace(0, len(patches) - 1, min(args.batch_size, len(patches))).round().astype(int)
        return np.stack([to_array(patches[i], channels) for i in picks]), "embedded (held-out patches)"
    from keras_realnvp.data.pipeline import evaluation_images
    from keras_realnvp.data.sources import open_source

    source = open_source(args.dataset, spec, "eval")
    images = evaluation_images(source, model.image_shape, spec.get("preprocessing", "none"), args.batch_size)
    return images, args.dataset


def _train_on_embedded(model, args):
    """`args.train_steps` Adam steps on embedded training patches at the model's size."""
    import keras
    import numpy as np

    from keras_realnvp.data.sources import EMBEDDED, open_source

    height = _check_embedded_size(model, "--train-steps trains on them.")
    source = open_source(EMBEDDED, {"patch_size": height}, "train")
    count = args.train_steps * args.train_batch_size
    picks = np.random.default_rng(args.seed).choice(len(source), count, replace=count > len(source))
    inputs = source.images[picks]  # uint8: the model dequantizes them with fresh noise
    if model.condition_dim:
        # A patch's label is its photo (`source.classes`), one-hot: the train tool's labels where the
        # model has one entry per photo; a model with more entries (celeba_64_conditional's 40
        # attributes) gets the photo's one-hot in its first entries, so its label path is trained too.
        photos = len(source.class_names)
        if model.condition_dim < photos:
            raise ValueError(f"--train-steps needs condition_dim >= {photos} (the embedded photos); "
                             f"this model has {model.condition_dim}.")
        inputs = {"images": inputs, "labels": np.eye(model.condition_dim, dtype="float32")[source.classes[picks]]}
    model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=100.0))
    model.fit(inputs, batch_size=args.train_batch_size, epochs=1, shuffle=False, verbose=0 if args.json else 1)


def _perturb(model, std, seed):
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    for variable in model.trainable_weights:
        value = np.asarray(keras.ops.convert_to_numpy(variable))
        variable.assign((value + rng.normal(0.0, std, value.shape)).astype(value.dtype))


def _failures(report, args):
    failures = []
    if not report["round_trip"]["finite"] or not report["bits_per_dim"]["finite"]:
        failures.append("non-finite round trip or bits/dim")
    if report["round_trip"]["max_abs_error"] > args.max_round_trip_error:
        failures.append(f"round-trip error {report['round_trip']['max_abs_error']:.3g} > {args.max_round_trip_error}")
    log_det = report["log_det"]
    if "skipped" not in log_det and not log_det["max_abs_difference"] <= args.max_log_det_error:
        failures.append(f"log-det off by {log_det['max_abs_difference']:.3g} nats")
    extremes = report["extremes"]
    if not (extremes["log_prob_finite"] and extremes["encode_finite"]):
        failures.append("non-finite log_prob or encode at pixel values 0 / 255")
    failures += [f"non-finite samples at T={s['temperature']:g}" for s in extremes["samples"] if not s["finite"]]
    return failures


def main(argv=None):
    args = parse_args(argv)
    import keras  # after parsing: --help loads no backend

    if keras.backend.backend() == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)  # the brute-force Jacobian in float64
    import numpy as np

    from keras_realnvp import RealNVP
    from keras_realnvp.diagnostics import DEFAULT_JACOBIAN_CHUNK, DEFAULT_JACOBIAN_MAX_DIMS, diagnose, format_report
    from keras_realnvp.presets import resolve_preset

    kinds = ["init", "trained"] if args.weights == "auto" else [args.weights]
    records, notes = [], []
    try:
        for kind in kinds:
            if kind == "trained":
                try:
                    resolve_preset(args.preset, need_weights=True)
                except ValueError as error:
                    if args.weights == "trained":
                        raise
                    notes.append(f"no trained weights: {error}")
                    continue
            keras.utils.set_random_seed(args.seed)
            model = RealNVP.from_preset(args.preset, load_weights=kind == "trained")
            images, source = _images(model, args)
            if kind == "init":
                if args.perturb:
                    _perturb(model, args.perturb, args.seed)
                inputs = images.astype("float32") + np.float32(0.5)
                if model.condition_dim:
                    eye = np.eye(model.condition_dim, dtype="float32")
                    inputs = {"images": inputs, "labels": eye[np.arange(len(images)) % model.condition_dim]}
                for _ in range(args.calibrate):
                    model(inputs, training=True)
                if args.train_steps:
                    _train_on_embedded(model, args)
            # A conditional model gets label vectors: one-hot, cycling over the classes / attributes.
            labels = (None if not model.condition_dim
                      else np.eye(model.condition_dim, dtype="float32")[np.arange(len(images)) % model.condition_dim])
            report = diagnose(
                model, images, labels=labels, jacobian_size=args.jacobian_size,
                jacobian_examples=args.jacobian_examples,
                jacobian_max_dims=args.jacobian_max_dims or DEFAULT_JACOBIAN_MAX_DIMS,
                jacobian_chunk=args.jacobian_chunk or DEFAULT_JACOBIAN_CHUNK,
                temperatures=args.temperatures, seed=args.seed,
            )
            report.update(preset=str(args.preset), weights=kind, dataset=source,
                          calibrate=args.calibrate if kind == "init" else 0,
                          train_steps=args.train_steps if kind == "init" else 0,
                          perturb=args.perturb if kind == "init" else 0.0)
            report["failures"] = _failures(report, args)
            records.append(report)
            keras.backend.clear_session(free_memory=False)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if args.json:
        print(json.dumps({"preset": str(args.preset), "reports": records, "notes": notes}))
    else:
        for report in records:
            extra = ""
            if report["weights"] == "init" and (report["calibrate"] or report["perturb"] or report["train_steps"]):
                extra = (f", calibrate={report['calibrate']}, perturb={report['perturb']:g}, "
                         f"train_steps={report['train_steps']}")
            print(format_report(report, title=f"{report['preset']} ({report['weights']}{extra})"))
            print()
        for note in notes:
            print(f"note: {note}")
    if any(report["failures"] for report in records):
        sys.exit(1)
    return records


if __name__ == "__main__":
    main()
