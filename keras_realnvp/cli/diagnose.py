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
                 this command turns on jax_enable_x64); the float32 model's difference too
  coupling s     min/max of s = scale * tanh(...) over every coupling's transformed units
  batch norm     min/max running means and variances, flow (RunningBatchNorm) and s/t
                 networks (BatchNormalization)
  extremes       finite log_prob / encode at all-0 and all-255 images; finite samples at
                 each --temperatures value, with their range

Images: the held-out embedded photo patches at the model's size (offline, no download)
unless --dataset names an image folder or Hub dataset (read as the preset's metadata
says). A conditional model gets one-hot label vectors, cycling over its label_dim.
At initialization every coupling scale is 0 and the statistics are 1 and 0; pass
--calibrate N (N training-mode passes over the batch, which set the batch-norm
statistics as the first training step does) and --perturb STD (Gaussian noise on every
trainable weight) to look at a model that has moved away from the identity, or
--train-steps N to train the initialized model first: N Adam steps (learning rate 1e-3,
gradient norm clipped at 100, as `keras-realnvp train`) on the embedded training patches at the
model's size, batch --train-batch-size, with a progress bar (a conditional model gets each
patch's photo, one-hot, in its first label entries).

    keras-realnvp diagnose embedded_16
    keras-realnvp diagnose cifar10 --batch-size 4 --json
    keras-realnvp diagnose celeba_64 --weights init --jacobian-max-dims 4096
    keras-realnvp diagnose runs/default/preset --calibrate 1 --perturb 0.05
    keras-realnvp diagnose imagenet_64 --weights init --train-steps 30 --jacobian-max-dims 3072

(in a checkout, `python tools/diagnose.py ...` is the same command.)

The exit status is 1 if a check failed outright (non-finite values, a round-trip error
above --max-round-trip-error pixel levels, or a log-det off by more than
--max-log-det-error nats), else 0; an error (a bad argument, preset or dataset) is one line
`error: ...` on stderr and exit status 2.
"""

import argparse
import json

from keras_realnvp.cli.arguments import (
    ArgumentParser,
    floats,
    non_negative_float,
    non_negative_int,
    positive_int,
    prog,
    run_command,
)


def _temperatures(text):
    values = floats(text)
    if not all(v >= 0 for v in values):
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers >= 0, got {text}")
    return values


def parse_args(argv=None):
    """The command line of `keras-realnvp diagnose`; a bad one exits with status 2.

    Example:

    >>> args = parse_args(["cifar10", "--temperatures", "1,3"])
    >>> args.preset, args.temperatures, args.weights
    ('cifar10', (1.0, 3.0), 'auto')
    """
    parser = ArgumentParser(prog=prog("diagnose"), description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset", help="built-in name, preset folder or hf://owner/repo")
    parser.add_argument("--weights", choices=("auto", "init", "trained"), default="auto",
                        help="init: load_weights=False; trained: the preset's weights; auto (default): init, "
                             "and trained too where the preset has weights")
    parser.add_argument("--dataset", default=None,
                        help="'embedded' (default: held-out photo patches at the model's size), an image folder "
                             "or a Hub id")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="images in the batch (default: 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dequantization, samples and --perturb")
    parser.add_argument("--calibrate", type=non_negative_int, default=0,
                        help="training-mode passes over the batch before the checks (init model only; default 0)")
    parser.add_argument("--perturb", type=non_negative_float, default=0.0,
                        help="std of Gaussian noise added to the init model's trainable weights (default 0)")
    parser.add_argument("--train-steps", type=non_negative_int, default=0,
                        help="Adam steps on the embedded training patches before the checks (init model only; "
                             "default 0)")
    parser.add_argument("--train-batch-size", type=positive_int, default=8,
                        help="batch of --train-steps (default: 8)")
    parser.add_argument("--jacobian-size", type=positive_int, default=None,
                        help="side of the brute-force crop (default: the smallest >= 8 the model accepts)")
    parser.add_argument("--jacobian-examples", type=positive_int, default=1,
                        help="images the brute force runs on (default: 1)")
    parser.add_argument("--jacobian-max-dims", type=positive_int, default=None,
                        help="skip the brute force above this many crop values (default: 256)")
    parser.add_argument("--jacobian-chunk", type=positive_int, default=None,
                        help="Jacobian rows per backward pass, the batch of that pass (default: 64)")
    parser.add_argument("--temperatures", type=_temperatures, default=(1.0, 3.0, 10.0),
                        help="comma-separated sampling temperatures (default: 1,3,10)")
    parser.add_argument("--max-round-trip-error", type=non_negative_float, default=1e-2,
                        help="round-trip error in pixel levels counted as a failure (default: 0.01)")
    parser.add_argument("--max-log-det-error", type=non_negative_float, default=1e-3,
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


def _images(model, spec, args):
    """The batch to check: held-out embedded patches spread over both photos, or the first of --dataset."""
    from keras_realnvp.data.held_out import held_out_data
    from keras_realnvp.data.sources import EMBEDDED

    if args.dataset in (None, EMBEDDED):
        height = _check_embedded_size(model, "Pass --dataset.")
        # Evenly spread over the held-out patches: both photos, several regions.
        images = held_out_data(EMBEDDED, {"patch_size": height}, model.image_shape, args.batch_size, choice="spread")
        return images.images, "embedded (held-out patches)"
    return held_out_data(args.dataset, spec, model.image_shape, args.batch_size).images, args.dataset


def _train_on_embedded(model, args):
    """`args.train_steps` Adam steps on embedded training patches at the model's size."""
    import numpy as np

    from keras_realnvp.data.sources import EMBEDDED, open_source
    from keras_realnvp.training.optimizer import GlobalBatchAdam

    height = _check_embedded_size(model, "--train-steps trains on them.")
    source = open_source(EMBEDDED, {"patch_size": height}, "train")
    count = args.train_steps * args.train_batch_size
    picks = np.random.default_rng(args.seed).choice(len(source), count, replace=count > len(source))
    inputs = source.images[picks]  # uint8: the model dequantizes them with fresh noise
    if model.label_dim:
        # A patch's label is its photo (`source.classes`), one-hot: the sample command's labels where the
        # model has one entry per photo; a model with more entries (celeba_64_conditional's 40
        # attributes) gets the photo's one-hot in its first entries, so its label path is trained too.
        photos = len(source.class_names)
        if model.label_dim < photos:
            raise ValueError(f"--train-steps needs label_dim >= {photos} (the embedded photos); "
                             f"this model has {model.label_dim}.")
        inputs = {"images": inputs, "labels": np.eye(model.label_dim, dtype="float32")[source.classes[picks]]}
    model.compile(optimizer=GlobalBatchAdam(1e-3, global_clipnorm=100.0))
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


def run(args) -> list:
    """Diagnose as the parsed command line `args` says and print the reports; returns them, one per model.

    A bad preset or dataset raises `ValueError`. Each report's `failures` lists the checks
    that failed outright.
    """
    import keras
    import numpy as np

    from keras_realnvp.backend.autodiff import enable_float64

    enable_float64()  # the brute-force Jacobian in float64 (JAX: jax_enable_x64)

    from keras_realnvp import RealNVP
    from keras_realnvp.diagnostics import DEFAULT_JACOBIAN_CHUNK, DEFAULT_JACOBIAN_MAX_DIMS, diagnose, format_report
    from keras_realnvp.hub import Preset

    kinds = ["init", "trained"] if args.weights == "auto" else [args.weights]
    records, notes = [], []
    for kind in kinds:
        try:
            preset = Preset.open(args.preset, RealNVP, need_weights=kind == "trained")
        except ValueError as error:
            if kind != "trained" or args.weights == "trained":
                raise
            notes.append(f"no trained weights: {error}")
            continue
        keras.utils.set_random_seed(args.seed)
        model = preset.build(load_weights=kind == "trained")
        images, source = _images(model, preset.dataset, args)
        if kind == "init":
            if args.perturb:
                _perturb(model, args.perturb, args.seed)
            inputs = images.astype("float32") + np.float32(0.5)
            if model.label_dim:
                eye = np.eye(model.label_dim, dtype="float32")
                inputs = {"images": inputs, "labels": eye[np.arange(len(images)) % model.label_dim]}
            for _ in range(args.calibrate):
                model(inputs, training=True)
            if args.train_steps:
                _train_on_embedded(model, args)
        # A conditional model gets label vectors: one-hot, cycling over the classes / attributes.
        labels = (None if not model.label_dim
                  else np.eye(model.label_dim, dtype="float32")[np.arange(len(images)) % model.label_dim])
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
    return records


def main(argv=None) -> int:
    """`keras-realnvp diagnose ARGV`: 1 if a check failed outright, else 0; an error exits with status 2.

    Example:

    >>> main(["no_such_preset"])
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    records = run_command(run, parse_args(argv))
    return 1 if any(report["failures"] for report in records) else 0
