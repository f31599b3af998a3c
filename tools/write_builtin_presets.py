"""Regenerate the built-in preset folders under presets/ from the paper's settings (docs/paper.md).

Each preset gets `config.json` (the serialized RealNVP) and `metadata.json` (dataset,
preprocessing, training settings and the objective they apply to, the paper's bits/dim and
the weights' status). The coupling-output batch norms use appendix E's running averages on
CIFAR-10 and ordinary batch statistics on the paper's other datasets (`bn_mode`). A
preset folder that already holds `model.weights.h5` keeps it, and keeps the metadata
that training recorded (its `trained` entry).

    python tools/write_builtin_presets.py
"""

import argparse
import json
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

TRAINING = {
    "batch_size": 64,
    "optimizer": {"name": "adam", "learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8},
    "global_clipnorm": 100.0,
    "l2_scale": 5e-5,
}

# CelebA's 40 binary attributes, in the order of list_attr_celeba.txt (the Hub copy's column names).
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)

PRESETS = {
    "cifar10": {
        "description": "CIFAR-10 32x32, 2 scales, 64 hidden maps, 8 residual blocks (paper §4.1).",
        # Appendix E: "we used batch normalization with a moving average on CIFAR-10".
        "architecture": {
            "image_shape": [32, 32, 3], "num_scales": 2, "filters": 64, "num_blocks": 8,
            "bn_mode": "running_average",
        },
        "dataset": {
            "name": "CIFAR-10", "hub_id": "uoft-cs/cifar10", "image_column": "img", "label_column": "label",
            "train_split": "train", "eval_split": "test", "preprocessing": "none", "flips": True,
        },
        "paper_bits_per_dim": 3.49,
    },
    "imagenet_32": {
        "description": "Downsampled ImageNet 32x32, 4 scales, 32 hidden maps, 4 residual blocks.",
        "architecture": {"image_shape": [32, 32, 3], "num_scales": 4, "filters": 32, "num_blocks": 4},
        "dataset": {
            "name": "ImageNet 32x32", "hub_id": "benjamin-paine/imagenet-1k-32x32", "image_column": "image",
            "label_column": "label", "train_split": "train", "eval_split": "validation", "preprocessing": "none",
            "flips": False,
            "note": "The paper used van den Oord's downsampling; Chrabaszcz's gives flows about 0.5 bits/dim "
            "lower and is not comparable. Check which one a Hub dataset holds.",
        },
        "paper_bits_per_dim": 4.28, "paper_train_bits_per_dim": 4.26,
    },
    "imagenet_64": {
        "description": "Downsampled ImageNet 64x64, 5 scales, 32 hidden maps, 2 residual blocks.",
        "architecture": {"image_shape": [64, 64, 3], "num_scales": 5, "filters": 32, "num_blocks": 2},
        "dataset": {
            "name": "ImageNet 64x64", "hub_id": "benjamin-paine/imagenet-1k-64x64", "image_column": "image",
            "label_column": "label", "train_split": "train", "eval_split": "validation", "preprocessing": "none",
            "flips": False,
            "note": "The paper used van den Oord's downsampling; Chrabaszcz's is not comparable.",
        },
        "paper_bits_per_dim": 3.98, "paper_train_bits_per_dim": 3.75,
    },
    "lsun_bedroom": {
        "description": "LSUN bedroom at 64x64, 5 scales, 32 hidden maps, 2 residual blocks.",
        "architecture": {"image_shape": [64, 64, 3], "num_scales": 5, "filters": 32, "num_blocks": 2},
        "dataset": {
            "name": "LSUN bedroom", "hub_id": "pcuenq/lsun-bedrooms", "image_column": "image",
            "train_split": "train", "eval_split": None, "held_out_every": 100, "preprocessing": "lsun",
            "flips": True,
        },
        "paper_bits_per_dim": 2.72, "paper_train_bits_per_dim": 2.70,
    },
    "lsun_tower": {
        "description": "LSUN tower at 64x64, 5 scales, 32 hidden maps, 2 residual blocks.",
        "architecture": {"image_shape": [64, 64, 3], "num_scales": 5, "filters": 32, "num_blocks": 2},
        "dataset": {
            "name": "LSUN tower", "hub_id": None, "image_column": "image", "train_split": "train",
            "eval_split": None, "held_out_every": 100, "preprocessing": "lsun", "flips": True,
            "note": "No Hub copy of LSUN tower is known: pass --dataset with a local image folder or a Hub id.",
        },
        "paper_bits_per_dim": 2.81, "paper_train_bits_per_dim": 2.78,
    },
    "lsun_church_outdoor": {
        "description": "LSUN church outdoor at 64x64, 5 scales, 32 hidden maps, 2 residual blocks.",
        "architecture": {"image_shape": [64, 64, 3], "num_scales": 5, "filters": 32, "num_blocks": 2},
        "dataset": {
            "name": "LSUN church outdoor", "hub_id": "tglcourse/lsun_church_train", "image_column": "image",
            "train_split": "train", "eval_split": None, "held_out_every": 100, "preprocessing": "lsun",
            "flips": True,
        },
        "paper_bits_per_dim": 3.08, "paper_train_bits_per_dim": 2.94,
    },
    "celeba_64": {
        "description": "CelebA, central 148x148 crop resized to 64x64, 5 scales, 32 hidden maps, 2 residual blocks.",
        "architecture": {"image_shape": [64, 64, 3], "num_scales": 5, "filters": 32, "num_blocks": 2},
        "dataset": {
            "name": "CelebA", "hub_id": "flwrlabs/celeba", "image_column": "image", "train_split": "train",
            "eval_split": "valid", "preprocessing": "celeba", "flips": True,
        },
        "paper_bits_per_dim": 3.02, "paper_train_bits_per_dim": 2.97,
    },
    "celeba_64_conditional": {
        "description": "CelebA 64x64 conditioned on its 40 binary attributes (appendix F): the celeba_64 "
        "architecture whose s/t networks also see the attribute vector (label_dim=40).",
        "architecture": {
            "image_shape": [64, 64, 3], "num_scales": 5, "filters": 32, "num_blocks": 2,
            "label_dim": len(CELEBA_ATTRIBUTES),
        },
        "dataset": {
            "name": "CelebA with attributes", "hub_id": "flwrlabs/celeba", "image_column": "image",
            "train_split": "train", "eval_split": "valid", "preprocessing": "celeba", "flips": True,
            "label_columns": list(CELEBA_ATTRIBUTES),
            "note": "Labels: the 40 attribute columns, booleans on the Hub (-1/1 and 0/1 copies are read too), "
            "as a {0, 1} vector in this order.",
        },
        "paper_bits_per_dim": None,
    },
    "embedded_16": {
        "description": "16x16 patches of scikit-learn's two sample photos (bundled, offline); a small model "
        "whose trained weights ship with the package.",
        # Small images from a small data set, like CIFAR-10: its running-average batch norm.
        "architecture": {
            "image_shape": [16, 16, 3], "num_scales": 2, "filters": 32, "num_blocks": 1,
            "bn_mode": "running_average",
        },
        "dataset": {"name": "embedded photo patches", "source": "embedded", "patch_size": 16, "flips": False,
                    "preprocessing": "none"},
        "paper_bits_per_dim": None,
    },
}


def write(root: Path) -> None:
    import keras

    from keras_realnvp import RealNVP
    from keras_realnvp.hub.preset_folder import CONFIG_FILE, FORMAT_VERSION, METADATA_FILE, WEIGHTS_FILE

    for name, spec in PRESETS.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        architecture = {"bn_mode": "batch", **spec["architecture"]}  # the paper's other datasets: ordinary BN
        model = RealNVP(**architecture, l2_scale=TRAINING["l2_scale"], name=name)
        config = keras.saving.serialize_keras_object(model)
        config.pop("compile_config", None)
        config.pop("build_config", None)
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        old = json.loads((folder / METADATA_FILE).read_text()) if (folder / METADATA_FILE).exists() else {}
        has_weights = (folder / WEIGHTS_FILE).exists()
        metadata = {
            "format_version": FORMAT_VERSION,
            "preset": name,
            "description": spec["description"],
            "parameter_count": int(model.count_params()),
            "dataset": spec["dataset"],
            "training": {**TRAINING, "objective": model.training_objective()},
            "paper_bits_per_dim": spec["paper_bits_per_dim"],
            "weights": {
                "published": has_weights,
                "location": "package" if has_weights else None,
                "hf_handle": f"hf://keras-realnvp/{name}",
            },
        }
        for key in ("paper_train_bits_per_dim",):
            if key in spec:
                metadata[key] = spec[key]
        if has_weights and "trained" in old:
            metadata["trained"] = old["trained"]
        (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        print(f"{name}: {metadata['parameter_count']:,} parameters -> {folder}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=_ROOT / "presets", help="folder of the preset folders")
    write(parser.parse_args().root)
