"""Held-out bits/dim of a preset, averaged over several dequantization draws, with its standard error.

    keras-realnvp evaluate --preset embedded_16
    keras-realnvp evaluate --preset runs/default/preset --dataset embedded --num-draws 4 --json
    keras-realnvp evaluate --preset hf://owner/celeba --dataset path/to/celeba_images

(in a checkout, `python tools/evaluate.py ...` is the same command.)

A conditional preset (one with `label_dim`, such as celeba_64_conditional) is evaluated on
log p(x | y), with each held-out image's own labels from the dataset (its attribute columns,
or the class sub-folders of a local folder). An error is one line `error: ...` on stderr and
exit status 2.
"""

import argparse
import json

from keras_realnvp.cli.arguments import ArgumentParser, positive_int, prog, run_command


def parse_args(argv=None):
    """The command line of `keras-realnvp evaluate`; a bad one exits with status 2.

    Example:

    >>> args = parse_args(["--preset", "embedded_16", "--num-draws", "2"])
    >>> args.preset, args.num_draws, args.dataset, args.json
    ('embedded_16', 2, None, False)
    """
    parser = ArgumentParser(prog=prog("evaluate"), description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", required=True, help="built-in name, preset folder or hf://owner/repo")
    parser.add_argument("--dataset", default=None,
                        help="'embedded', an image folder or a Hub id (default: the preset's)")
    parser.add_argument("--num-draws", type=positive_int, default=4,
                        help="dequantization draws per image (default: 4)")
    parser.add_argument("--max-examples", type=positive_int, default=None,
                        help="evaluate only the first N held-out images")
    parser.add_argument("--batch-size", type=positive_int, default=256, help="images per forward pass")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dequantization noise")
    parser.add_argument("--json", action="store_true", help="print one JSON record")
    return parser.parse_args(argv)


def run(args) -> dict:
    """Evaluate as the parsed command line `args` says, print the result; returns the record.

    A bad preset or dataset raises `ValueError`.
    """
    import keras

    from keras_realnvp import RealNVP
    from keras_realnvp.data.held_out import held_out_data
    from keras_realnvp.data.sources import EMBEDDED
    from keras_realnvp.evaluation import held_out_bits_per_dim
    from keras_realnvp.hub import Preset

    preset = Preset.open(args.preset, RealNVP)
    model, spec = preset.build(), preset.dataset
    source = args.dataset or (EMBEDDED if spec.get("source") == EMBEDDED else spec.get("hub_id"))
    if not source:
        raise ValueError("the preset names no dataset; pass --dataset")
    pixels, labels, _ = held_out_data(source, spec, model.image_shape, args.max_examples,
                                      label_dim=model.label_dim)
    mean, standard_error = held_out_bits_per_dim(
        model, pixels, num_draws=args.num_draws, seed=args.seed, batch_size=args.batch_size, labels=labels
    )
    record = {
        "preset": args.preset, "dataset": source, "images": int(len(pixels)), "num_draws": args.num_draws,
        "bits_per_dim": mean, "standard_error": standard_error, "backend": keras.backend.backend(),
        "paper_bits_per_dim": preset.metadata.get("paper_bits_per_dim"),
        "conditional": model.label_dim is not None,
    }
    if args.json:
        print(json.dumps(record))
    else:
        print(f"{args.preset} on {source}: {mean:.4f} +- {standard_error:.4f} bits/dim "
              f"({len(pixels)} images x {args.num_draws} draws; paper: {record['paper_bits_per_dim']})")
    return record


def main(argv=None) -> int:
    """`keras-realnvp evaluate ARGV`: prints the held-out bits/dim; 0, or an error and exit status 2.

    Example:

    >>> main(["--preset", "embedded_16", "--max-examples", "8", "--num-draws", "1"])  # doctest: +ELLIPSIS
    embedded_16 on embedded: ... bits/dim (8 images x 1 draws; paper: ...)
    0
    """
    run_command(run, parse_args(argv))
    return 0
