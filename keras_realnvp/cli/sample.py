"""Pictures of the paper's experiments from a trained Real NVP (keras_realnvp.experiments).

The model is a preset (--preset, loaded with RealNVP.from_preset: a built-in name such as
embedded_16, whose trained weights ship with the package; a preset folder such as
runs/default/preset written by `python tools/train.py`; or hf://owner/repo) or a whole
saved model (--model, a `.keras` file from `model.save`). Real images come from the held-out
test patches of the embedded photos, at the model's image size, or with --dataset from the
held-out split of a dataset ('embedded', an image folder or a Hub id, read with the preset's
dataset settings), dequantized with --seed.
Every experiment writes one PNG (--output, default <experiment>.png):

  samples      figure 5: N held-out patches (left) beside N samples at --temperature (right)
  manifold     figure 6, eq. 19: the --steps x --steps grid of decoded latents
               cos(phi)(cos(phi') z1 + sin(phi') z2) + sin(phi)(cos(phi') z3 + sin(phi') z4)
               of 4 held-out patches; row i has phi = 2 pi i / n, column j phi' = 2 pi j / n;
               cells (0,0), (0,n/4), (n/4,0), (n/4,n/4) are the four patches themselves
  extrapolate  appendix C: N samples --factor times larger than the training images
  compress     appendix D: N held-out patches (rows) with the coarsest 100%, 50%, 25%, 12.5%,
               6.25% (--fractions) of their latents kept and the rest drawn at --temperature
  swap         appendix F: a conditional model's x' = g(f(x; y); y'); rows: N patches, columns:
               the patch, then the patch decoded as each class. The classes are the two photos
               (0: china.jpg, 1: flower.jpg). --train-conditional trains such a model first.
               With --dataset: class labels give one column per class; attribute vectors
               (CelebA's 40) one column per shown image, whose attributes every row takes.
  toy          figure 1: trains the 2-D toy (RealNVP2D, TOY_2D_CONFIG) on two moons for
               --train-steps steps and draws data, f(data), samples and f^-1(samples) with
               grid lines; needs no --model

Conditional models (appendix F; presets with condition_dim, such as celeba_64_conditional):
samples, extrapolate and compress take the labels of --labels: `held-out` (default: the labels
of the real images shown, each sample beside the image whose labels it was drawn with), K
comma-separated numbers (one label vector for all), or names of the preset's labels (its
attributes or classes) set to 1, all others 0, e.g. --labels Smiling,Male. manifold takes an
unconditional model.

Pixel values are clipped to [0, 255] in the pictures only. The backend is Keras's usual
choice (KERAS_BACKEND=jax, torch or tensorflow).

    python tools/sample.py --preset embedded_16 --temperature 0.7 --output samples.png
    python tools/sample.py --preset runs/default/preset --experiment manifold --output manifold.png
    python tools/sample.py --model runs/conditional/model.keras --train-conditional --experiment swap
    python tools/sample.py --experiment toy --output toy.png
    python tools/sample.py --preset runs/celeba/preset --dataset path/to/celeba --labels Smiling,Young
"""

import argparse
import sys
from pathlib import Path

# Run from a checkout without installing: the package lives next to tools/.
_ROOT = Path(__file__).resolve().parents[1]
if (_ROOT / "keras_realnvp").is_dir() and str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

EXPERIMENTS = ("samples", "manifold", "extrapolate", "compress", "swap", "toy")
DEFAULT_NUM = {"samples": 64, "manifold": 4, "extrapolate": 4, "compress": 8, "swap": 8, "toy": 1000}
DEFAULT_SCALE = {"samples": 4, "manifold": 4, "extrapolate": 2, "compress": 4, "swap": 4, "toy": 1}
PHOTO_NAMES = ("china", "flower")


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _non_negative_float(text):
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _fractions(text):
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers, got {text!r}") from None
    if not all(0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"fractions must lie in [0, 1], got {text}")
    return values


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows the defaults and keeps the module docstring's layout."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_HelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", type=Path, help="a saved .keras model (model.save)")
    source.add_argument(
        "--preset", help="a preset for RealNVP.from_preset: built-in name (embedded_16), folder or hf://owner/repo"
    )
    parser.add_argument("--experiment", choices=EXPERIMENTS, default="samples", help="what to draw")
    parser.add_argument(
        "--num",
        type=_positive_int,
        default=None,
        help="images (samples, extrapolate), rows (compress, swap) or toy points; unset: "
        + ", ".join(f"{k} {v}" for k, v in DEFAULT_NUM.items() if k != "manifold")
        + " (manifold always uses 4 patches)",
    )
    parser.add_argument(
        "--temperature", type=_non_negative_float, default=1.0, help="standard deviation of the prior draws"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws and of the choice of real patches")
    parser.add_argument("--output", type=Path, default=None, help="the PNG to write; unset: <experiment>.png")
    parser.add_argument("--steps", type=_positive_int, default=8, help="manifold: angles per axis (n)")
    parser.add_argument("--factor", type=_positive_int, default=2, help="extrapolate: enlargement of height, width")
    parser.add_argument(
        "--fractions",
        type=_fractions,
        default=(1.0, 0.5, 0.25, 0.125, 0.0625),
        help="compress: comma-separated fractions of latent units kept (columns)",
    )
    parser.add_argument(
        "--scale",
        type=_positive_int,
        default=None,
        help="PNG enlargement (nearest neighbour); unset: 1 for toy, 2 for extrapolate, else 4",
    )
    parser.add_argument("--batch-size", type=_positive_int, default=64, help="images decoded at a time")
    parser.add_argument(
        "--dataset",
        default=None,
        help="take the real images (and a conditional model's labels) from this dataset's held-out split: "
        "'embedded', an image folder or a Hub id; unset: the embedded test patches",
    )
    parser.add_argument(
        "--labels",
        default="held-out",
        help="conditional models: 'held-out' (the real images' labels), K comma-separated numbers, or "
        "comma-separated label names set to 1",
    )
    parser.add_argument(
        "--train-conditional",
        action="store_true",
        help="swap: if --model does not exist, train a conditional model (labels: the two photos) on the "
        "embedded train patches for --train-steps steps and save it there first",
    )
    parser.add_argument(
        "--train-steps",
        type=_positive_int,
        default=None,
        help="training steps: toy (unset: 600) or --train-conditional (unset: 300)",
    )
    parser.add_argument("--patch-size", type=_positive_int, default=16, help="--train-conditional: image side")
    parser.add_argument("--filters", type=_positive_int, default=32, help="--train-conditional: hidden maps")
    parser.add_argument("--num-blocks", type=_positive_int, default=2, help="--train-conditional: residual blocks")
    args = parser.parse_args(argv)
    if args.experiment != "toy" and args.model is None and args.preset is None:
        parser.error(f"--experiment {args.experiment} needs --model or --preset")
    if args.train_conditional and (args.experiment != "swap" or args.model is None):
        parser.error("--train-conditional goes with --experiment swap and --model PATH (where the model is saved)")
    args.num = args.num or DEFAULT_NUM[args.experiment]
    args.scale = args.scale or DEFAULT_SCALE[args.experiment]
    args.output = args.output or Path(f"{args.experiment}.png")
    return args


def _load_model(args):
    import keras

    from keras_realnvp import RealNVP

    if args.preset is not None:
        if not hasattr(RealNVP, "from_preset"):
            raise SystemExit("error: this version of keras_realnvp has no RealNVP.from_preset; use --model")
        return RealNVP.from_preset(args.preset)
    if not args.model.exists():
        hint = " (add --train-conditional to train one there)" if args.experiment == "swap" else ""
        raise SystemExit(f"error: no model at {args.model}{hint}")
    model = keras.saving.load_model(args.model, compile=False)
    if not isinstance(model, RealNVP):
        raise SystemExit(f"error: {args.model} holds a {type(model).__name__}, not a RealNVP")
    return model


def _held_out_patches(model, count, seed):
    """`count` held-out patches at the model's size, dequantized, and their photo numbers."""
    import numpy as np

    from keras_realnvp.data import dequantize_numpy, embedded_patch_origins, load_embedded_patches

    height, width, channels = model.image_shape
    if height != width or channels != 3:
        raise SystemExit(f"error: the embedded patches are square RGB; this model takes {model.image_shape}")
    try:
        patches = load_embedded_patches("test", patch_size=height)
        photos = embedded_patch_origins("test", patch_size=height)[:, 0]
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    rng = np.random.default_rng(seed)
    # Alternate the two photos, so both appear in every picture.
    by_photo = [rng.permutation(np.flatnonzero(photos == p)) for p in range(len(PHOTO_NAMES))]
    order = [index for pair in zip(*by_photo, strict=False) for index in pair]
    if count > len(order):
        raise SystemExit(f"error: only {len(order)} held-out patches of {height}x{width}; ask for fewer")
    chosen = np.array(order[:count])
    return dequantize_numpy(patches[chosen], seed=seed), photos[chosen]


def _train_conditional(args):
    import keras
    import numpy as np

    from keras_realnvp import RealNVP
    from keras_realnvp.data import embedded_patch_origins, load_embedded_patches, shuffled_batches
    from keras_realnvp.experiments import one_hot

    steps = args.train_steps or 300
    size = args.patch_size
    images = load_embedded_patches("train", patch_size=size)
    labels = one_hot(embedded_patch_origins("train", patch_size=size)[:, 0], len(PHOTO_NAMES))
    model = RealNVP(
        image_shape=(size, size, 3),
        num_scales=2,
        filters=args.filters,
        num_blocks=args.num_blocks,
        condition_dim=len(PHOTO_NAMES),
        seed=args.seed,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=100.0))
    batches = shuffled_batches(np.arange(len(images)), args.batch_size, seed=args.seed)

    def labelled():
        for (index,) in batches:  # shuffled_batches yields 1-tuples, as Keras wants
            yield ({"images": images[index], "labels": labels[index]},)

    print(f"training a conditional model ({len(PHOTO_NAMES)} classes: {', '.join(PHOTO_NAMES)}) for {steps} steps")
    model.fit(labelled(), epochs=1, steps_per_epoch=steps, shuffle=False, verbose=2)  # the generator shuffles
    args.model.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.model)
    print(f"saved {args.model}")
    return model


def _toy(args):
    import keras
    import numpy as np

    from keras_realnvp.experiments import toy_figure
    from keras_realnvp.models.toy2d import TOY_2D_CONFIG, RealNVP2D, two_moons

    keras.utils.set_random_seed(args.seed)
    steps = args.train_steps or 600
    data = two_moons(4096, seed=args.seed)
    model = RealNVP2D(**TOY_2D_CONFIG, seed=args.seed)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    batch = 256
    epochs = -(-steps * batch // len(data))
    model.fit(data, batch_size=batch, epochs=epochs, verbose=0)
    held_out = two_moons(1000, seed=args.seed + 1)
    mean_log_density = float(np.mean(keras.ops.convert_to_numpy(model.log_prob(held_out))))
    print(f"toy: {epochs * (len(data) // batch)} steps; held-out mean log-density {mean_log_density:.3f} nats")
    return toy_figure(model, held_out[: args.num], seed=args.seed, panel_size=256)


def _real_images(args, model, count):
    """`count` real held-out images (dequantized), their labels for a conditional model, and the label names."""
    from keras_realnvp.data import dequantize_numpy
    from keras_realnvp.data.pipeline import evaluation_images
    from keras_realnvp.data.sources import open_source, source_labels
    from keras_realnvp.experiments import one_hot

    conditional = model.condition_dim is not None
    if args.dataset is None:
        data, photos = _held_out_patches(model, count, args.seed)
        if conditional and model.condition_dim == len(PHOTO_NAMES):
            return data, one_hot(photos, len(PHOTO_NAMES)), list(PHOTO_NAMES)
        return data, None, None
    metadata = getattr(model, "preset_metadata", {})
    spec = metadata.get("dataset", {})
    try:
        held_out = open_source(args.dataset, spec, "eval")
        labels, names = source_labels(held_out, spec, model.condition_dim) if conditional else (None, None)
        result = evaluation_images(held_out, model.image_shape, spec.get("preprocessing", "none"), count, labels)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    pixels, labels = result if conditional else (result, None)
    if len(pixels) < count:
        raise SystemExit(f"error: only {len(pixels)} held-out images in {args.dataset}; ask for fewer")
    return dequantize_numpy(pixels, seed=args.seed), labels, names


def _label_names(model, names):
    trained = getattr(model, "preset_metadata", {}).get("trained", {})
    spec = getattr(model, "preset_metadata", {}).get("dataset", {})
    return names or trained.get("label_names") or spec.get("label_columns") or []


def _chosen_labels(args, model, real_labels, names, count):
    """The label vectors (count, K) that --labels asks for; `None` for an unconditional model."""
    import numpy as np

    if model.condition_dim is None:
        if args.labels != "held-out":
            raise SystemExit("error: --labels goes with a conditional model (condition_dim); this one has none")
        return None
    if args.labels == "held-out":
        if real_labels is None:
            raise SystemExit(
                f"error: no labels for the held-out images of this model (condition_dim={model.condition_dim}); "
                "pass --dataset with labelled data, or --labels"
            )
        return real_labels[:count]
    parts = [part.strip() for part in args.labels.split(",") if part.strip()]
    try:
        vector = np.array([float(part) for part in parts], np.float32)
    except ValueError:
        names = _label_names(model, names)
        unknown = [part for part in parts if part not in names]
        if unknown or not names:
            known = ", ".join(names) if names else "none recorded"
            raise SystemExit(f"error: unknown label names {', '.join(unknown)}; this model's labels: {known}") from None
        vector = np.array([1.0 if name in parts else 0.0 for name in names], np.float32)
    if vector.shape != (model.condition_dim,):
        raise SystemExit(
            f"error: --labels gives {vector.size} numbers; the model has condition_dim={model.condition_dim}"
        )
    return np.broadcast_to(vector, (count, model.condition_dim)).copy()


def draw(args, model):
    """The picture (uint8, not yet enlarged) of `args.experiment` for a loaded `RealNVP`."""
    import numpy as np

    from keras_realnvp import experiments
    from keras_realnvp.visualization import image_grid

    common = {"seed": args.seed, "batch_size": args.batch_size}
    conditional = model.condition_dim is not None
    if args.experiment == "swap" and not conditional:
        raise SystemExit("error: --experiment swap needs a conditional model (see --train-conditional)")
    if conditional and args.experiment == "manifold":
        raise SystemExit("error: --experiment manifold takes an unconditional model")
    if args.experiment == "samples":
        data, real_labels, names = _real_images(args, model, args.num)
        labels = _chosen_labels(args, model, real_labels, names, args.num)
        return experiments.sample_grid(model, data, temperature=args.temperature, labels=labels, **common)
    if args.experiment == "manifold":
        data, _, _ = _real_images(args, model, 4)
        print("cells that are the patches themselves:", experiments.manifold_image_cells(args.steps))
        return experiments.manifold_grid(model, data, num_steps=args.steps, batch_size=args.batch_size)
    if args.experiment == "extrapolate":
        labels = None
        if conditional:
            real_labels, names = (None, None) if args.labels != "held-out" else _real_images(args, model, args.num)[1:]
            labels = _chosen_labels(args, model, real_labels, names, args.num)
        samples = experiments.extrapolate(model, args.num, args.factor, args.temperature, labels=labels, **common)
        return image_grid(samples, padding=2)
    if args.experiment == "compress":
        data, real_labels, names = _real_images(args, model, args.num)
        labels = _chosen_labels(args, model, real_labels, names, args.num)
        kept = [f"{100 * experiments.kept_fraction(model, f):.2f}%" for f in args.fractions]
        print("latent units kept per column:", ", ".join(kept))
        return experiments.compression_grid(model, data, args.fractions, args.temperature, labels=labels, **common)
    data, real_labels, names = _real_images(args, model, args.num)
    if real_labels is None:
        raise SystemExit(
            f"error: swap needs the images' own labels; the embedded patches are labelled by photo "
            f"({len(PHOTO_NAMES)} classes), the model has condition_dim={model.condition_dim}: pass --dataset"
        )
    if args.labels != "held-out":
        candidates = _chosen_labels(args, model, real_labels, names, 1)
        print("columns: the image, then decoded with --labels", args.labels)
    elif np.all(real_labels.sum(axis=1) == 1.0):  # one-hot classes: one column per class
        candidates = np.eye(model.condition_dim, dtype=np.float32)
        print("columns: the image, then decoded as", ", ".join(names or map(str, range(model.condition_dim))))
    else:  # attribute vectors: column j decodes every row with the attributes of image j
        candidates = real_labels
        print("columns: the image, then decoded with the attributes of image 1, 2, ...")
    return experiments.swap_grid(model, data, real_labels, candidates, batch_size=args.batch_size)


def main(argv=None):
    args = parse_args(argv)
    # Imported after parsing so that --help answers without loading a backend.
    import keras

    from keras_realnvp.visualization import save_image_grid

    keras.utils.set_random_seed(args.seed)
    if args.experiment == "toy":
        picture = _toy(args)
    else:
        if args.train_conditional and not args.model.exists():
            model = _train_conditional(args)
        else:
            model = _load_model(args)
        print(f"backend {keras.config.backend()}: model for {model.image_shape} images, {model.num_scales} scales")
        picture = draw(args, model)
    path = save_image_grid(picture[None], args.output, num_columns=1, padding=0, scale=args.scale)
    print(f"wrote {path} ({picture.shape[1] * args.scale}x{picture.shape[0] * args.scale})")
    return path


if __name__ == "__main__":
    main()
