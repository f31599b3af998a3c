"""The Hub model card of a preset and the exact set of files `tools/publish.py` uploads."""

import json
import shutil
from pathlib import Path

from keras_realnvp.presets.preset_folder import (
    CONFIG_FILE,
    METADATA_FILE,
    WEIGHTS_FILE,
    read_metadata,
    read_model_config,
)

CARD_FILE = "README.md"


def model_card(metadata: dict, config: dict, repo_id: str) -> str:
    """The README.md of a published preset: YAML header, results, how to load.

    Example:

    >>> card = model_card({"trained": {"held_out_bits_per_dim": 3.6}, "paper_bits_per_dim": 3.49,
    ...                    "dataset": {"name": "CIFAR-10", "hub_id": "uoft-cs/cifar10"}}, {}, "me/cifar")
    >>> card.splitlines()[1]
    'library_name: keras'
    """
    dataset = metadata.get("dataset", {})
    trained = metadata.get("trained", {})
    measured = trained.get("held_out_bits_per_dim")
    paper = metadata.get("paper_bits_per_dim")
    header = ["---", "library_name: keras", "license: apache-2.0", "tags:"]
    header += [f"- {tag}" for tag in ("keras", "keras-realnvp", "real-nvp", "normalizing-flow", "density-estimation")]
    if dataset.get("hub_id"):
        header += ["datasets:", f"- {dataset['hub_id']}"]
    if measured is not None:
        header += [
            "model-index:",
            f"- name: {repo_id.split('/')[-1]}",
            "  results:",
            "  - task:",
            "      type: density-estimation",
            "    dataset:",
            f"      name: {dataset.get('name', 'unknown')}",
            f"      type: {dataset.get('hub_id') or dataset.get('name', 'unknown')}",
            "    metrics:",
            "    - type: bits_per_dim",
            f"      value: {measured:.4f}",
        ]
    header.append("---")
    def fmt(v):
        return "n/a" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)

    body = [
        f"# Real NVP: {metadata.get('preset', repo_id)}",
        "",
        metadata.get("description", "A Real NVP model (Dinh, Sohl-Dickstein, Bengio, ICLR 2017) for Keras 3."),
        "",
        "| | bits/dim |",
        "| --- | --- |",
        f"| this model, held-out ({trained.get('held_out_images', '?')} images) | {fmt(measured)} |",
        f"| the paper (Table 1) | {fmt(paper)} |",
        "",
        f"Trained on {dataset.get('name', trained.get('dataset', 'unknown data'))} for {trained.get('steps', '?')} "
        f"steps (batch {trained.get('batch_size', '?')}) on the {trained.get('backend', '?')} backend.",
        "",
        "## Use",
        "",
        "```python",
        "from keras_realnvp import RealNVP",
        "",
        f'model = RealNVP.from_preset("hf://{repo_id}")',
        "samples = model.sample(16, temperature=0.7)",
        "```",
        "",
        "Works with any Keras 3 backend (JAX, PyTorch, TensorFlow): `pip install keras-realnvp`.",
    ]
    return "\n".join(header + body) + "\n"


def stage_preset_for_hub(preset_dir, repo_id: str, staging) -> list[Path]:
    """Copy a preset folder and its model card into `staging`: exactly what gets uploaded.

    The folder is checked first (a readable config, metadata and weights file).
    """
    preset_dir, staging = Path(preset_dir), Path(staging)
    config = read_model_config(preset_dir)
    metadata = read_metadata(preset_dir)
    if not (preset_dir / WEIGHTS_FILE).is_file():
        raise ValueError(f"{preset_dir} has no {WEIGHTS_FILE}; publish a trained preset folder.")
    staging.mkdir(parents=True, exist_ok=True)
    files = []
    for name in (CONFIG_FILE, METADATA_FILE, WEIGHTS_FILE):
        files.append(Path(shutil.copy2(preset_dir / name, staging / name)))
    metadata = {**metadata, "weights": {"published": True, "hf_handle": f"hf://{repo_id}"}}
    (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    card = staging / CARD_FILE
    card.write_text(model_card(metadata, config, repo_id))
    return [*files, card]
