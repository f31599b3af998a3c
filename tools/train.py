"""Train a small Real NVP on the embedded photo patches: the package's main job.

With no arguments this trains on 16x16 patches of scikit-learn's two sample photos
(about 4 minutes on two CPU cores under KERAS_BACKEND=jax), prints the held-out bits/dim
before and after training, and writes into --output (default runs/default):

    model.keras                     the trained model (keras.saving.load_model)
    samples_temperature_1.0.png     left: 64 real test patches, right: 64 samples at temperature 1.0
    samples_temperature_0.7.png     the same with samples at temperature 0.7
    results.json                    the settings and the held-out bits/dim

The backend is Keras's usual choice: set KERAS_BACKEND to jax, torch or tensorflow.

    KERAS_BACKEND=jax python tools/train.py
    KERAS_BACKEND=torch python tools/train.py --epochs 1 --output runs/torch_quick
"""

import argparse
import json
import sys
import time
from pathlib import Path

# Run from a checkout without installing: the package lives next to tools/.
_ROOT = Path(__file__).resolve().parents[1]
if (_ROOT / "keras_realnvp").is_dir() and str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

# The held-out noise is fixed apart from --seed, so runs with different seeds are
# scored on the very same dequantized test set.
EVALUATION_SEED = 0
NUM_GRID_IMAGES = 64
GRID_SCALE = 4
TEMPERATURES = (1.0, 0.7)


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows the defaults and keeps the module docstring's layout."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument("--epochs", type=_positive_int, default=3, help="training epochs")
    parser.add_argument(
        "--steps-per-epoch",
        type=_positive_int,
        default=None,
        help="training steps per epoch; unset: one pass, the number of train patches // batch size",
    )
    parser.add_argument("--batch-size", type=_positive_int, default=64, help="images per training step")
    parser.add_argument("--learning-rate", type=_positive_float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--num-scales", type=_positive_int, default=2, help="scales of the multi-scale flow")
    parser.add_argument(
        "--filters", type=_positive_int, default=32, help="hidden maps of the s/t networks at the first scale"
    )
    parser.add_argument("--num-blocks", type=_positive_int, default=2, help="residual blocks per s/t network")
    parser.add_argument(
        "--patch-size",
        type=_positive_int,
        default=16,
        help="side of the square training patches: even, at most 128, a multiple of 2^(num_scales - 1) "
        "and at least 2^num_scales",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialization, shuffling, noise and samples")
    parser.add_argument(
        "--output", type=Path, default=Path("runs/default"), help="folder for the model, grids and results"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    # Imported after parsing so that --help answers without loading a backend.
    import keras
    import numpy as np

    from keras_realnvp import RealNVP
    from keras_realnvp.data import load_embedded_patches, shuffled_batches
    from keras_realnvp.evaluation import held_out_bits_per_dim
    from keras_realnvp.visualization import image_grid, save_image_grid

    keras.utils.set_random_seed(args.seed)
    try:
        train = load_embedded_patches("train", args.patch_size)
        test = load_embedded_patches("test", args.patch_size)
        model = RealNVP(
            image_shape=(args.patch_size, args.patch_size, 3),
            num_scales=args.num_scales,
            filters=args.filters,
            num_blocks=args.num_blocks,
            seed=args.seed,
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if args.batch_size > len(train):
        raise SystemExit(f"error: --batch-size {args.batch_size} exceeds the {len(train)} train patches.")
    args.steps_per_epoch = args.steps_per_epoch or len(train) // args.batch_size
    print(
        f"backend {keras.config.backend()}: {len(train)} train and {len(test)} test patches of "
        f"{args.patch_size}x{args.patch_size}x3; {args.epochs} epochs of {args.steps_per_epoch} steps, "
        f"batch {args.batch_size}"
    )

    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate, global_clipnorm=100.0))

    def evaluate(when):
        mean, standard_error = held_out_bits_per_dim(model, test, seed=EVALUATION_SEED)
        print(
            f"held-out bits/dim {when} training: {mean:.4f} +- {standard_error:.4f} (test split, {len(test)} patches)"
        )
        return mean, standard_error

    before = evaluate("before")
    start = time.perf_counter()
    history = model.fit(
        shuffled_batches(train, args.batch_size, seed=args.seed),
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        shuffle=False,  # the generator shuffles
    )
    train_seconds = time.perf_counter() - start
    print(f"trained in {train_seconds:.1f} s")
    after = evaluate("after")

    args.output.mkdir(parents=True, exist_ok=True)
    # Saved before sampling, so a failure while drawing pictures never loses the training.
    model.save(args.output / "model.keras")
    # Evenly spaced over the test split, so both photos are shown.
    real_grid = image_grid(test[np.linspace(0, len(test) - 1, NUM_GRID_IMAGES).astype(int)])
    written = []
    for temperature in TEMPERATURES:
        samples = model.sample(NUM_GRID_IMAGES, temperature=temperature, seed=args.seed)
        # Real patches beside the samples, both grids tiled once more as two images.
        pair = np.stack([real_grid, image_grid(samples)])
        path = args.output / f"samples_temperature_{temperature:.1f}.png"
        written.append(save_image_grid(pair, path, num_columns=2, padding=4, scale=GRID_SCALE))

    results = {
        "backend": keras.config.backend(),
        "settings": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
        "train_patches": len(train),
        "test_patches": len(test),
        "train_seconds": round(train_seconds, 1),
        "last_epoch_train_bits_per_dim": float(history.history["bits_per_dim"][-1]),
        "held_out_bits_per_dim": {
            "evaluation_seed": EVALUATION_SEED,
            "before": {"mean": before[0], "standard_error": before[1]},
            "after": {"mean": after[0], "standard_error": after[1]},
        },
    }
    (args.output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(
        "wrote", ", ".join(str(path) for path in [args.output / "model.keras", *written, args.output / "results.json"])
    )
    return results


if __name__ == "__main__":
    main()
