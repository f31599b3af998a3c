"""Train Real NVP on a preset's dataset (or any image folder / Hub dataset), on any backend.

With no arguments this is the package's main job: the `embedded_16` preset (16x16 patches of
scikit-learn's two bundled photos, offline) for 4 epochs, printing held-out bits/dim before
training and after each epoch. Into --output (default runs/default) it writes:

    samples_epoch_NNN.png   each epoch: held-out images (left) beside samples (right)
    checkpoints/            the run's state at each epoch end (and every --checkpoint-every steps)
    preset/                 the trained model as a preset folder (config.json, metadata.json with
                            dataset, steps, backend and held-out bits/dim, model.weights.h5)
    results.json            the same numbers and the per-epoch history

Examples:

    KERAS_BACKEND=jax python tools/train.py
    KERAS_BACKEND=torch python tools/train.py --preset celeba_64 --dataset path/to/celeba_images --epochs 100
    KERAS_BACKEND=jax python tools/train.py --preset celeba_64_conditional --epochs 100   # on the 40 attributes
    KERAS_BACKEND=jax python tools/train.py --preset cifar10 --epochs 100 --distribute   # all local GPUs
    KERAS_BACKEND=tensorflow python tools/train.py --preset cifar10 --epochs 100 --distribute
    python tools/train.py --output runs/default --resume    # continue an interrupted run exactly

A GPU is used when the backend sees one; no flag is needed. A conditional preset (condition_dim)
trains on the dataset's labels: its attribute columns (the preset's label_columns), or its classes,
e.g. the class sub-folders of a local --dataset folder, one-hot.
"""

import argparse
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if (_ROOT / "keras_realnvp").is_dir() and str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="embedded_16",
                        help="built-in preset name, preset folder or hf://owner/repo (default: embedded_16)")
    parser.add_argument("--dataset", default=None,
                        help="'embedded', a local image folder or a Hub dataset id (default: the preset's dataset)")
    parser.add_argument("--epochs", type=_positive_int, default=4, help="epochs (default: 4)")
    parser.add_argument("--steps-per-epoch", type=_positive_int, default=None,
                        help="steps per epoch (default: one pass over the training images)")
    parser.add_argument("--batch-size", type=_positive_int, default=None, help="default: the preset's (64)")
    parser.add_argument("--learning-rate", type=float, default=None, help="Adam learning rate (default: 1e-3)")
    parser.add_argument("--output", type=Path, default=Path("runs/default"), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of init, data order, crops, flips, noise")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output")
    parser.add_argument("--checkpoint-every", type=int, default=0,
                        help="also checkpoint every N steps inside an epoch (default: epoch ends only)")
    parser.add_argument("--stop-after-steps", type=_positive_int, default=None,
                        help="stop once this global step is reached, as an interruption would")
    parser.add_argument("--max-nonfinite-steps", type=_positive_int, default=10,
                        help="steps with a non-finite loss or gradients are skipped (weights unchanged); this many "
                             "in a row stop the run with an error, the last good checkpoint intact (default: 10)")
    parser.add_argument("--eval-examples", type=_positive_int, default=1000,
                        help="held-out images for the per-epoch bits/dim (default: 1000)")
    parser.add_argument("--distribute", action="store_true",
                        help="data-parallel over all local devices, the same update as one device with the "
                        "same global batch (--batch-size a multiple of the device count): JAX with "
                        "keras.distribution.DataParallel, TensorFlow with tf.distribute.MirroredStrategy; "
                        "not available on PyTorch")
    for name in ("num-scales", "filters", "num-blocks", "condition-dim"):
        parser.add_argument(f"--{name}", type=_positive_int, default=None,
                            help=f"override the preset's {name.replace('-', '_')} (for quick experiments)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from keras_realnvp.training import TrainingRun  # after parsing: --help loads no backend

    overrides = {
        key: value
        for key, value in (
            ("num_scales", args.num_scales), ("filters", args.filters), ("num_blocks", args.num_blocks),
            ("condition_dim", args.condition_dim),
        )
        if value is not None
    }
    run = TrainingRun(
        preset=args.preset, dataset=args.dataset, output=args.output, epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size, seed=args.seed, resume=args.resume,
        checkpoint_every=args.checkpoint_every, stop_after_steps=args.stop_after_steps,
        eval_examples=args.eval_examples, learning_rate=args.learning_rate, distribute=args.distribute,
        overrides=overrides, max_nonfinite_steps=args.max_nonfinite_steps,
    )
    try:
        return run.run()
    except (ValueError, FloatingPointError) as error:  # FloatingPointError: TrainingDivergedError
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
