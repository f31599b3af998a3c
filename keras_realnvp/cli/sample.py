"""Pictures of the paper's experiments from a trained Real NVP (keras_realnvp.experiments).

The model is a preset (--preset, loaded with RealNVP.from_preset: a built-in name such as
embedded_16, whose trained weights ship with the package; a preset folder such as
runs/default/preset written by `keras-realnvp train`; or hf://owner/repo) or a whole
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

Conditional models (appendix F; presets with label_dim, such as celeba_64_conditional):
samples, extrapolate and compress take the labels of --labels: `held-out` (default: the labels
of the real images shown, each sample beside the image whose labels it was drawn with), K
comma-separated numbers (one label vector for all), or names of the preset's labels (its
attributes or classes) set to 1, all others 0, e.g. --labels Smiling,Male. manifold takes an
unconditional model.

Pixel values are clipped to [0, 255] in the pictures only. The backend is Keras's usual
choice (KERAS_BACKEND=jax, torch or tensorflow).

    keras-realnvp sample --preset embedded_16 --temperature 0.7 --output samples.png
    keras-realnvp sample --preset runs/default/preset --experiment manifold --output manifold.png
    keras-realnvp sample --model runs/conditional/model.keras --train-conditional --experiment swap
    keras-realnvp sample --experiment toy --output toy.png
    keras-realnvp sample --preset runs/celeba/preset --dataset path/to/celeba --labels Smiling,Young

(in a checkout, `python tools/sample.py ...` is the same command.) An error is one line
`error: ...` on stderr and exit status 2.
"""

from pathlib import Path

from keras_realnvp.cli.arguments import (
    ArgumentParser,
    HelpFormatter,
    fractions,
    non_negative_float,
    positive_int,
    prog,
    run_command,
)

EXPERIMENTS = ("samples", "manifold", "extrapolate", "compress", "swap", "toy")
DEFAULT_NUM = {"samples": 64, "manifold": 4, "extrapolate": 4, "compress": 8, "swap": 8, "toy": 1000}
DEFAULT_SCALE = {"samples": 4, "manifold": 4, "extrapolate": 2, "compress": 4, "swap": 4, "toy": 1}


def parse_args(argv=None):
    """The command line of `keras-realnvp sample`, with the experiment's defaults filled in.

    Example:

    >>> args = parse_args(["--preset", "embedded_16", "--experiment", "compress"])
    >>> args.num, args.scale, str(args.output), args.fractions
    (8, 4, 'compress.png', (1.0, 0.5, 0.25, 0.125, 0.0625))
    """
    parser = ArgumentParser(prog=prog("sample"), description=__doc__, formatter_class=HelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", type=Path, help="a saved .keras model (model.save)")
    source.add_argument("--preset",
                        help="a preset for RealNVP.from_preset: built-in name (embedded_16), folder or hf://owner/repo")
    parser.add_argument("--experiment", choices=EXPERIMENTS, default="samples", help="what to draw")
    parser.add_argument("--num", type=positive_int, default=None,
                        help="images (samples, extrapolate), rows (compress, swap) or toy points; unset: "
                        + ", ".join(f"{k} {v}" for k, v in DEFAULT_NUM.items() if k != "manifold")
                        + " (manifold always uses 4 patches)")
    parser.add_argument("--temperature", type=non_negative_float, default=1.0,
                        help="standard deviation of the prior draws")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws and of the choice of real patches")
    parser.add_argument("--output", type=Path, default=None, help="the PNG to write; unset: <experiment>.png")
    parser.add_argument("--steps", type=positive_int, default=8, help="manifold: angles per axis (n)")
    parser.add_argument("--factor", type=positive_int, default=2, help="extrapolate: enlargement of height, width")
    parser.add_argument("--fractions", type=fractions, default=(1.0, 0.5, 0.25, 0.125, 0.0625),
                        help="compress: comma-separated fractions of latent units kept (columns)")
    parser.add_argument("--scale", type=positive_int, default=None,
                        help="PNG enlargement (nearest neighbour); unset: 1 for toy, 2 for extrapolate, else 4")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images decoded at a time")
    parser.add_argument("--dataset", default=None,
                        help="take the real images (and a conditional model's labels) from this dataset's held-out "
                        "split: 'embedded', an image folder or a Hub id; unset: the embedded test patches")
    parser.add_argument("--labels", default="held-out",
                        help="conditional models: 'held-out' (the real images' labels), K comma-separated numbers, "
                        "or comma-separated label names set to 1")
    parser.add_argument("--train-conditional", action="store_true",
                        help="swap: if --model does not exist, train a conditional model (labels: the two photos) on "
                        "the embedded train patches for --train-steps steps and save it there first")
    parser.add_argument("--train-steps", type=positive_int, default=None,
                        help="training steps: toy (unset: 600) or --train-conditional (unset: 300)")
    parser.add_argument("--patch-size", type=positive_int, default=16, help="--train-conditional: image side")
    parser.add_argument("--filters", type=positive_int, default=32, help="--train-conditional: hidden maps")
    parser.add_argument("--num-blocks", type=positive_int, default=2, help="--train-conditional: residual blocks")
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
    """The model to draw with and its preset's metadata (`{}` for a `.keras` file)."""
    import keras

    from keras_realnvp import RealNVP
    from keras_realnvp.hub import Preset

    if args.preset is not None:
        preset = Preset.open(args.preset, RealNVP)
        return preset.build(), preset.metadata
    if not args.model.exists():
        hint = " (add --train-conditional to train one there)" if args.experiment == "swap" else ""
        raise ValueError(f"no model at {args.model}{hint}")
    model = keras.saving.load_model(args.model, compile=False)
    if not isinstance(model, RealNVP):
        raise ValueError(f"{args.model} holds a {type(model).__name__}, not a RealNVP")
    return model, {}


def _train_conditional(args):
    from keras_realnvp.data.sources import EMBEDDED_CLASS_NAMES
    from keras_realnvp.experiments import train_photo_conditional

    steps = args.train_steps or 300
    names = ", ".join(EMBEDDED_CLASS_NAMES)
    print(f"training a conditional model ({len(EMBEDDED_CLASS_NAMES)} classes: {names}) for {steps} steps")
    model = train_photo_conditional(patch_size=args.patch_size, filters=args.filters, num_blocks=args.num_blocks,
                                    steps=steps, batch_size=args.batch_size, seed=args.seed)
    args.model.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.model)
    print(f"saved {args.model}")
    return model


def _toy(args):
    import keras
    import numpy as np

    from keras_realnvp.experiments import toy_figure, train_toy
    from keras_realnvp.models.toy2d import two_moons

    model = train_toy(steps=args.train_steps or 600, seed=args.seed)
    held_out = two_moons(1000, seed=args.seed + 1)
    mean_log_density = float(np.mean(keras.ops.convert_to_numpy(model.log_prob(held_out))))
    print(f"toy: {int(model.optimizer.iterations)} steps; held-out mean log-density {mean_log_density:.3f} nats")
    return toy_figure(model, held_out[: args.num], seed=args.seed, panel_size=256)


def _real_images(args, model, metadata, count):
    """`count` real held-out images (dequantized), their labels for a conditional model, and the label names.

    Without --dataset: the embedded test patches, the two photos in turn, in a --seed-ed
    choice; they are labelled (by photo) for a model with one label entry per photo.
    """
    from keras_realnvp.data import dequantize_numpy
    from keras_realnvp.data.held_out import held_out_data
    from keras_realnvp.data.sources import EMBEDDED, EMBEDDED_CLASS_NAMES

    if args.dataset is None:
        height, width, channels = model.image_shape
        if height != width or channels != 3:
            raise ValueError(f"the embedded patches are square RGB; this model takes {model.image_shape}")
        labelled = model.label_dim == len(EMBEDDED_CLASS_NAMES)
        source, spec, name = EMBEDDED, {"patch_size": height}, f"the embedded patches of {height}x{width}"
        label_dim, choice = model.label_dim if labelled else None, "random"
    else:
        spec = metadata.get("dataset", {})
        source, name, label_dim, choice = args.dataset, args.dataset, model.label_dim, "first"
    images, labels, names = held_out_data(source, spec, model.image_shape, count, label_dim=label_dim,
                                          choice=choice, seed=args.seed)
    if len(images) < count:
        raise ValueError(f"only {len(images)} held-out images in {name}; ask for fewer")
    return dequantize_numpy(images, seed=args.seed), labels, names


def _labels(args, model, metadata, real_labels, names, count):
    """The label vectors `(count, K)` that --labels asks for; `None` for an unconditional model."""
    from keras_realnvp.experiments import recorded_label_names, requested_labels

    if model.label_dim is None and args.labels != "held-out":
        raise ValueError("--labels goes with a conditional model (label_dim); this one has none")
    if model.label_dim is not None and args.labels == "held-out" and real_labels is None:
        raise ValueError(f"no labels for the held-out images of this model (label_dim={model.label_dim}); "
                         "pass --dataset with labelled data, or --labels")
    names = recorded_label_names(metadata, names)
    return requested_labels(args.labels, model.label_dim, count, held_out=real_labels, names=names)


def draw(args, model, metadata=None):
    """The picture (uint8, not yet enlarged) of `args.experiment` for a loaded `RealNVP`.

    `metadata` is its preset's (dataset settings, recorded label names), if it has one.

    A model that cannot draw it, or labels or data that do not fit it, raise `ValueError`.
    """
    import numpy as np

    from keras_realnvp import experiments
    from keras_realnvp.visualization import image_grid

    metadata = metadata or {}
    common = {"seed": args.seed, "batch_size": args.batch_size}
    conditional = model.label_dim is not None
    if args.experiment == "swap" and not conditional:
        raise ValueError("--experiment swap needs a conditional model (see --train-conditional)")
    if conditional and args.experiment == "manifold":
        raise ValueError("--experiment manifold takes an unconditional model")
    if args.experiment == "samples":
        data, real_labels, names = _real_images(args, model, metadata, args.num)
        labels = _labels(args, model, metadata, real_labels, names, args.num)
        return experiments.sample_grid(model, data, temperature=args.temperature, labels=labels, **common)
    if args.experiment == "manifold":
        data, _, _ = _real_images(args, model, metadata, 4)
        print("cells that are the patches themselves:", experiments.manifold_image_cells(args.steps))
        return experiments.manifold_grid(model, data, num_steps=args.steps, batch_size=args.batch_size)
    if args.experiment == "extrapolate":
        labels = None
        if conditional:
            real_labels, names = None, None
            if args.labels == "held-out":
                _, real_labels, names = _real_images(args, model, metadata, args.num)
            labels = _labels(args, model, metadata, real_labels, names, args.num)
        samples = experiments.extrapolate(model, args.num, args.factor, args.temperature, labels=labels, **common)
        return image_grid(samples, padding=2)
    if args.experiment == "compress":
        data, real_labels, names = _real_images(args, model, metadata, args.num)
        labels = _labels(args, model, metadata, real_labels, names, args.num)
        kept = [f"{100 * experiments.kept_fraction(model, f):.2f}%" for f in args.fractions]
        print("latent units kept per column:", ", ".join(kept))
        return experiments.compression_grid(model, data, args.fractions, args.temperature, labels=labels, **common)
    data, real_labels, names = _real_images(args, model, metadata, args.num)
    if real_labels is None:
        raise ValueError(
            "swap needs the images' own labels; the embedded patches are labelled by photo "
            f"(2 classes), the model has label_dim={model.label_dim}: pass --dataset"
        )
    if args.labels != "held-out":
        candidates = _labels(args, model, metadata, real_labels, names, 1)
        print("columns: the image, then decoded with --labels", args.labels)
    elif np.all(real_labels.sum(axis=1) == 1.0):  # one-hot classes: one column per class
        candidates = np.eye(model.label_dim, dtype=np.float32)
        print("columns: the image, then decoded as", ", ".join(names or map(str, range(model.label_dim))))
    else:  # attribute vectors: column j decodes every row with the attributes of image j
        candidates = real_labels
        print("columns: the image, then decoded with the attributes of image 1, 2, ...")
    return experiments.swap_grid(model, data, real_labels, candidates, batch_size=args.batch_size)


def run(args) -> Path:
    """Draw and write the picture that the parsed command line `args` asks for; returns its path.

    A model, data or labels that do not fit the experiment raise `ValueError`.
    """
    import keras  # after parsing: --help loads no backend

    from keras_realnvp.visualization import save_image_grid

    keras.utils.set_random_seed(args.seed)
    if args.experiment == "toy":
        picture = _toy(args)
    else:
        if args.train_conditional and not args.model.exists():
            model, metadata = _train_conditional(args), {}
        else:
            model, metadata = _load_model(args)
        print(f"backend {keras.config.backend()}: model for {model.image_shape} images, {model.num_scales} scales")
        picture = draw(args, model, metadata)
    path = save_image_grid(picture[None], args.output, num_columns=1, padding=0, scale=args.scale)
    print(f"wrote {path} ({picture.shape[1] * args.scale}x{picture.shape[0] * args.scale})")
    return path


def main(argv=None) -> int:
    """`keras-realnvp sample ARGV`: writes the picture; 0, or an error and exit status 2.

    Example:

    >>> main(["--experiment", "manifold"])
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    run_command(run, parse_args(argv))
    return 0
