"""Held-out bits/dim of a preset, averaged over several dequantization draws, with its standard error.

    python tools/evaluate.py --preset embedded_16
    python tools/evaluate.py --preset runs/default/preset --dataset embedded --num-draws 4 --json
    python tools/evaluate.py --preset hf://owner/celeba --dataset path/to/celeba_images

A conditional preset (one with `condition_dim`, such as celeba_64_conditional) is evaluated on
log p(x | y), with each held-out image's own labels from the dataset (its attribute columns,
or the class sub-folders of a local folder).
"""

import argparse
import json
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if (_ROOT / "keras_realnvp").is_dir() and str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", required=True, help="built-in name, preset folder or hf://owner/repo")
    parser.add_argument("--dataset", default=None,
                        help="'embedded', an image folder or a Hub id (default: the preset's)")
    parser.add_argument("--num-draws", type=int, default=4, help="dequantization draws per image (default: 4)")
    parser.add_argument("--max-examples", type=int, default=None, help="evaluate only the first N held-out images")
    parser.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dequantization noise")
    parser.add_argument("--json", action="store_true", help="print one JSON record")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import keras

    from keras_realnvp import RealNVP
    from keras_realnvp.data.pipeline import evaluation_images
    from keras_realnvp.data.sources import EMBEDDED, open_source, source_labels
    from keras_realnvp.evaluation import held_out_bits_per_dim

    try:
        model = RealNVP.from_preset(args.preset)
        spec = model.preset_metadata.get("dataset", {})
        source = args.dataset or (EMBEDDED if spec.get("source") == EMBEDDED else spec.get("hub_id"))
        if not source:
            raise ValueError("the preset names no dataset; pass --dataset")
        held_out = open_source(source, spec, "eval")
        labels = None if model.condition_dim is None else source_labels(held_out, spec, model.condition_dim)[0]
        pixels = evaluation_images(
            held_out, model.image_shape, spec.get("preprocessing", "none"), args.max_examples, labels
        )
        pixels, labels = pixels if labels is not None else (pixels, None)
        mean, standard_error = held_out_bits_per_dim(
            model, pixels, num_draws=args.num_draws, seed=args.seed, batch_size=args.batch_size, labels=labels
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    record = {
        "preset": args.preset, "dataset": source, "images": int(len(pixels)), "num_draws": args.num_draws,
        "bits_per_dim": mean, "standard_error": standard_error, "backend": keras.backend.backend(),
        "paper_bits_per_dim": model.preset_metadata.get("paper_bits_per_dim"),
        "conditional": model.condition_dim is not None,
    }
    if args.json:
        print(json.dumps(record))
    else:
        print(f"{args.preset} on {source}: {mean:.4f} +- {standard_error:.4f} bits/dim "
              f"({len(pixels)} images x {args.num_draws} draws; paper: {record['paper_bits_per_dim']})")
    return record


if __name__ == "__main__":
    main()
