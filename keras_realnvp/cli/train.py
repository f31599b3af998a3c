"""Train Real NVP on a preset's dataset (or any image folder / Hub dataset), on any backend.

With no arguments this is the package's main job: the `embedded_16` preset (16x16 patches of
scikit-learn's two bundled photos, offline) for 4 epochs, printing held-out bits/dim before
training and after each epoch. Into --output (default runs/default) it writes:

    samples_epoch_NNN.png   each epoch: held-out images (left) beside samples (right)
    checkpoints/            the run's state at each epoch end (and every --checkpoint-every steps)
    preset/                 the trained model as a preset folder (config.json, metadata.json with
                            dataset, steps, backend and held-out bits/dim, model.weights.h5)
    results.json            the same numbers and the per-epoch history
    metrics.csv             one row per epoch: epoch, step, train and held-out bits/dim (with its
                            standard error), skipped steps, learning rate, images/s of training
                            (evaluation excluded), seconds; a --resume keeps each epoch once
    tensorboard/            with --tensorboard: Keras' TensorBoard logs (train/) and the held-out
                            bits/dim (validation/); view with: tensorboard --logdir OUTPUT/tensorboard
    run.json                the run's settings, as it started, and what each --resume changed
    run.lock                while the run runs: its PID and host

The run folder never loses or mixes work:

- One run at a time: a second run into a folder in use stops with an error naming the PID that
  holds run.lock. The lock is the OS's: a killed run's leftover run.lock does not block --resume.
- A new run into a folder that holds another run is refused: pass --resume to continue that run,
  or --overwrite to move it into a new folder beside it, OUTPUT.old-<date>-<time> (the message
  says which); nothing is deleted. Files of your own in the folder are left alone.
- --resume takes every setting you leave out from run.json, and refuses one that differs from
  it when it decides the model (the whole model config: --preset, --filters, ...), the data or
  their order (--dataset, --batch-size, --steps-per-epoch, --seed, --learning-rate,
  --eval-examples, --streaming, --shuffle-buffer, --num-examples), naming each with both values.
  --epochs, --stop-after-steps, --checkpoint-every, --max-nonfinite-steps, --distribute,
  --workers and --tensorboard may change; run.json records it.
- preset/ and results.json are written beside their place and renamed into it: a crash while
  they are written leaves the previous ones whole.

Every setting is checked before any work starts. A usage error ends with one line,
"error: ...", on stderr and exit status 2; a run that diverged (--max-nonfinite-steps) with
"error: ..." and status 1.

Examples (in a checkout, `python tools/train.py ...` is the same command):

    KERAS_BACKEND=jax keras-realnvp train
    KERAS_BACKEND=torch keras-realnvp train --preset celeba_64 --dataset path/to/celeba_images --epochs 100
    KERAS_BACKEND=jax keras-realnvp train --preset celeba_64_conditional --epochs 100   # on the 40 attributes
    KERAS_BACKEND=jax keras-realnvp train --preset cifar10 --epochs 100 --distribute   # all local GPUs
    KERAS_BACKEND=tensorflow keras-realnvp train --preset cifar10 --epochs 100 --distribute
    keras-realnvp train --output runs/default --resume    # continue an interrupted run exactly
    keras-realnvp train --output runs/default --resume --epochs 8   # ... and train it for longer
    keras-realnvp train --output runs/default --overwrite # start again, the old run moved aside
    keras-realnvp train --preset lsun_bedroom --streaming --shuffle-buffer 20000 --epochs 1  # streamed
    keras-realnvp train --tensorboard --output runs/tb    # also TensorBoard logs (needs tensorflow + tensorboard)

A GPU is used when the backend sees one; no flag is needed. A conditional preset (label_dim)
trains on the dataset's labels: its attribute columns (the preset's label_columns), or its classes,
e.g. the class sub-folders of a local --dataset folder, one-hot.

Progress goes to stdout (Keras progress bars for training and the held-out evaluation, and one
line per epoch); warnings (Python's warnings module) and errors to stderr.
"""

import argparse
from pathlib import Path

from keras_realnvp.cli.arguments import ArgumentParser, fail, non_negative_int, positive_int, prog, run_command

# A new run's number of epochs; a resumed one keeps its recorded number unless --epochs is given.
DEFAULT_EPOCHS = 4


def parse_args(argv=None):
    """The command line of `keras-realnvp train`; a bad one exits with status 2.

    Example:

    >>> args = parse_args(["--epochs", "2", "--filters", "8"])
    >>> args.epochs, args.filters, args.preset, str(args.output)
    (2, 8, None, 'runs/default')
    """
    parser = ArgumentParser(prog=prog("train"), description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    # Defaults are None so that --resume can tell a setting left out (the recorded one is used)
    # from one given (it must equal the recorded one, or be one that may change).
    parser.add_argument("--preset", default=None,
                        help="built-in preset name, preset folder or hf://owner/repo (default: embedded_16)")
    parser.add_argument("--dataset", default=None,
                        help="'embedded', a local image folder or a Hub dataset id (default: the preset's dataset)")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help=f"epochs (default: {DEFAULT_EPOCHS}; with --resume the recorded number)")
    parser.add_argument("--steps-per-epoch", type=positive_int, default=None,
                        help="steps per epoch (default: one pass over the training images)")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="default: the preset's (64)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="Adam learning rate, in (0, 1] (default: the preset's, 1e-3)")
    parser.add_argument("--output", type=Path, default=Path("runs/default"),
                        help="the run folder (default: runs/default); a new run needs one without another run")
    parser.add_argument("--seed", type=int, default=None, help="seed of init, data order, crops, flips, noise "
                        "(default: 0)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true",
                       help="continue the run in --output from its latest checkpoint, with its recorded settings")
    start.add_argument("--overwrite", action="store_true",
                       help="start a new run in an --output that holds one: the old run is moved (never deleted) "
                            "into a new folder beside it, OUTPUT.old-<date>-<time>")
    parser.add_argument("--checkpoint-every", type=non_negative_int, default=None,
                        help="also checkpoint every N steps inside an epoch (default: 0, epoch ends only)")
    parser.add_argument("--stop-after-steps", type=positive_int, default=None,
                        help="stop once this global step is reached, as an interruption would")
    parser.add_argument("--max-nonfinite-steps", type=positive_int, default=None,
                        help="steps with a non-finite loss or gradients are skipped (weights unchanged); this many "
                             "in a row stop the run with an error, the last good checkpoint intact (default: 10)")
    parser.add_argument("--eval-examples", type=positive_int, default=None,
                        help="held-out images for the per-epoch bits/dim (default: 1000)")
    parser.add_argument("--distribute", action=argparse.BooleanOptionalAction, default=None,
                        help="data-parallel over all local devices, the same update as one device with the "
                        "same global batch (--batch-size a multiple of the device count): JAX with "
                        "keras.distribution.DataParallel, TensorFlow with tf.distribute.MirroredStrategy; "
                        "not available on PyTorch (default: off; with --resume as recorded)")
    data = parser.add_argument_group("data loading")
    data.add_argument("--streaming", action=argparse.BooleanOptionalAction, default=None,
                      help="read the Hub dataset (or --dataset folder) as a stream: training starts at once, nothing "
                           "is downloaded ahead; examples are buffer-shuffled, another order than the default "
                           "(default: off; with --resume as recorded)")
    data.add_argument("--shuffle-buffer", type=positive_int, default=None,
                      help="with --streaming: examples in the shuffle buffer, which holds their bytes (default: "
                           "10000; with --resume as recorded)")
    data.add_argument("--num-examples", type=positive_int, default=None,
                      help="with --streaming: the training split's size, for a Hub dataset that does not record it")
    data.add_argument("--workers", type=positive_int, default=None,
                      help="batches loaded at once, in threads, ahead of the training step; the batches are the "
                           "same for any count (default: 1)")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write TensorBoard logs into OUTPUT/tensorboard (training metrics, learning rate, "
                             "held-out bits/dim per epoch); needs the tensorflow and tensorboard packages")
    for name in ("num-scales", "filters", "num-blocks", "label-dim"):
        parser.add_argument(f"--{name}", type=positive_int, default=None,
                            help=f"override the preset's {name.replace('-', '_')} (for quick experiments)")
    return parser.parse_args(argv)


def run(args) -> dict:
    """Train as the parsed command line `args` says; returns the run's results (`TrainingRun.run`).

    A bad setting, run folder or dataset raises `ValueError`; a run that diverged,
    `FloatingPointError` (`TrainingDivergedError`).
    """
    from keras_realnvp.training import TrainingRun  # after parsing: --help loads no backend

    overrides = {
        key: value
        for key, value in (
            ("num_scales", args.num_scales), ("filters", args.filters), ("num_blocks", args.num_blocks),
            ("label_dim", args.label_dim),
        )
        if value is not None
    }
    epochs = args.epochs if args.epochs is not None or args.resume else DEFAULT_EPOCHS
    return TrainingRun(
        preset=args.preset, dataset=args.dataset, output=args.output, epochs=epochs,
        steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size, seed=args.seed, resume=args.resume,
        overwrite=args.overwrite, checkpoint_every=args.checkpoint_every, stop_after_steps=args.stop_after_steps,
        eval_examples=args.eval_examples, learning_rate=args.learning_rate, distribute=args.distribute,
        overrides=overrides, max_nonfinite_steps=args.max_nonfinite_steps, streaming=args.streaming,
        shuffle_buffer=args.shuffle_buffer, num_examples=args.num_examples, workers=args.workers,
        tensorboard=args.tensorboard,
    ).run()


def main(argv=None) -> int:
    """`keras-realnvp train ARGV`: 0 once the run is done; a usage error exits with status 2, a diverged run 1.

    Example:

    >>> main(["--epochs", "0"])
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    args = parse_args(argv)
    try:
        run_command(run, args)  # the settings, the run folder, the data, a missing extra: status 2
    except FloatingPointError as error:  # TrainingDivergedError: the run failed, the settings were valid
        fail(error, 1)
    return 0
