"""The Hub model card (README.md) of a trained preset, written from what its training run recorded.

Everything the card says of the data and the results comes from the preset's `trained` metadata
(what `keras-realnvp train` records of the run), never from the preset's defaults: a model trained on
another source than its preset's dataset is described as such, and a local image folder is named
only as "a local image folder". The YAML header is built with huggingface_hub's `ModelCardData`.
"""

import math
import numbers
from pathlib import Path

from keras_realnvp.hub.resolve import HF_PREFIX

CARD_FILE = "README.md"
PAPER_ARXIV_ID = "1605.08803"
PIPELINE_TAG = "unconditional-image-generation"  # the Hub task closest to density estimation, which is not one
TAGS = ("real-nvp", "normalizing-flow", "keras", "keras-realnvp")
LICENSE = "apache-2.0"
EMBEDDED = "embedded"  # keras_realnvp.data.sources.EMBEDDED, not imported: that would import the data stack
LOCAL_FOLDER = "a local image folder"
# model-index needs a dataset type; these name sources that are not Hub datasets.
_TYPE_OF = {"embedded": "embedded-photo-patches", "folder": "local-image-folder"}


def model_card(metadata: dict, config: dict, repo_id: str, revision: str | None = None) -> str:
    """The README.md of a published preset: Hub metadata, what was trained on what, results, how to load.

    `metadata` is the preset's metadata and must hold the `trained` entry of its training run;
    `config` holds the model's constructor arguments (`read_model_config`); `repo_id` and
    `revision` (a branch, `None` for the default one) are where it is published. The dataset
    named is `trained["dataset"]`, with the preset's display name only when the preset's dataset
    is that same source; bits/dim come from `trained` only.

    Example:

    >>> from huggingface_hub import ModelCard
    >>> metadata = {"preset": "cifar10", "paper_bits_per_dim": 3.49,
    ...             "dataset": {"name": "CIFAR-10", "hub_id": "uoft-cs/cifar10"},
    ...             "trained": {"dataset": "me/faces", "held_out_bits_per_dim": 3.6, "steps": 10}}
    >>> card = ModelCard(model_card(metadata, {"image_shape": [32, 32, 3]}, "me/faces-flow"))
    >>> card.data.pipeline_tag, card.data.datasets, card.data.eval_results[0].metric_value
    ('unconditional-image-generation', ['me/faces'], 3.6)
    >>> "CIFAR-10" in card.text  # trained on me/faces: neither the preset's dataset nor the paper's number
    False
    >>> model_card({"preset": "cifar10"}, {}, "me/x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: The preset's metadata.json has no 'trained' entry ...
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    trained = _checked_trained(metadata)
    spec = metadata.get("dataset") if isinstance(metadata.get("dataset"), dict) else {}
    data = run_dataset(trained["dataset"], spec)
    measured = trained.get("held_out_bits_per_dim")
    name = repo_id.split("/")[-1]
    results = None
    if measured is not None:
        results = [EvalResult(
            task_type=PIPELINE_TAG, task_name="Density estimation", dataset_type=data["type"],
            dataset_name=data["name"], metric_type="bits_per_dim", metric_value=round(float(measured), 4),
            metric_name="held-out bits/dim (lower is better)",
        )]
    card_data = ModelCardData(
        library_name="keras", license=LICENSE, pipeline_tag=PIPELINE_TAG, tags=list(TAGS),
        datasets=[data["hub_id"]] if data["hub_id"] else None, model_name=name if results else None,
        eval_results=results,
    )
    body = _body(metadata, config, trained, data, repo_id, revision)
    # ModelCard parses the text back: a header that YAML cannot read fails here, not on the Hub.
    return str(ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}"))


def run_dataset(source: str, spec: dict) -> dict:
    """How the card names the source a run trained on: `name`, `hub_id` (or None), `kind`, `type`, `as_preset`.

    `source` is `trained["dataset"]`: "embedded", a Hub dataset id or a local folder path.
    `as_preset` is whether the preset's dataset `spec` describes that same source (then its
    display name is used). A Hub id (`owner/name`, and no folder of that name here) is named;
    any other source is a local folder, named only as "a local image folder".

    Example:

    >>> run_dataset("uoft-cs/cifar10", {"name": "CIFAR-10", "hub_id": "uoft-cs/cifar10"})["name"]
    'CIFAR-10'
    >>> run_dataset("/home/me/photos", {"name": "CIFAR-10", "hub_id": "uoft-cs/cifar10"})
    {'name': 'a local image folder', 'hub_id': None, 'kind': 'folder', 'type': 'local-image-folder', 'as_preset': False}
    """
    if not isinstance(source, str) or not source:
        raise ValueError(f"The dataset a run trained on is a non-empty string, got {source!r}.")
    if source == EMBEDDED:
        same = spec.get("source") == EMBEDDED
        name = spec.get("name") if same and spec.get("name") else "the embedded photo patches (scikit-learn's samples)"
        return {"name": name, "hub_id": None, "kind": "embedded", "type": _TYPE_OF["embedded"], "as_preset": same}
    if _is_hub_dataset_id(source):
        same = source == spec.get("hub_id")
        name = spec.get("name") if same and spec.get("name") else source
        return {"name": name, "hub_id": source, "kind": "hub", "type": source, "as_preset": same}
    return {"name": LOCAL_FOLDER, "hub_id": None, "kind": "folder", "type": _TYPE_OF["folder"], "as_preset": False}


def _is_hub_dataset_id(source: str) -> bool:
    # The trainer reads an existing folder as a folder first (data.sources.open_source). A name
    # without an owner is taken for a folder too: it cannot be told from a relative folder name
    # once the folder is elsewhere, and a folder's name must not reach a public card.
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if source.count("/") != 1 or source.startswith(("/", ".", "~")) or "\\" in source or ":" in source:
        return False
    if Path(source).expanduser().is_dir():
        return False
    try:
        validate_repo_id(source)
    except HFValidationError:
        return False
    return True


def _checked_trained(metadata: dict) -> dict:
    trained = metadata.get("trained") if isinstance(metadata, dict) else None
    if not isinstance(trained, dict):
        raise ValueError(
            "The preset's metadata.json has no 'trained' entry (what `keras-realnvp train` records of its run), so "
            "there is no trained model to describe; publish the preset folder a training run wrote (OUTPUT/preset)."
        )
    if not isinstance(trained.get("dataset"), str) or not trained["dataset"]:
        raise ValueError(
            f"The preset's 'trained' metadata names no dataset it trained on ('dataset' is {trained.get('dataset')!r})."
        )
    for key in ("held_out_bits_per_dim", "held_out_standard_error"):
        value = trained.get(key)
        if value is not None and not (_is_number(value) and math.isfinite(value)):
            raise ValueError(f"The preset's 'trained' metadata has {key} {value!r}; a finite number or none.")
    return trained


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _count(number, noun) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _body(metadata, config, trained, data, repo_id, revision) -> str:
    preset = metadata.get("preset")
    lines = [
        f"# Real NVP: {repo_id.split('/')[-1]}",
        "",
        f"A [Real NVP](https://arxiv.org/abs/{PAPER_ARXIV_ID}) normalizing flow (Dinh, Sohl-Dickstein and Bengio, "
        f"*Density estimation using Real NVP*, ICLR 2017, arXiv:{PAPER_ARXIV_ID}) for Keras 3, trained with "
        f"keras-realnvp on {data['name']}: an exact log-likelihood model of images that also samples them.",
        "",
        f"Architecture: {_architecture(config)}" + (f" (the `{preset}` preset)." if preset else "."),
        "",
        "## Results",
        "",
        *_results(metadata, trained, data),
        "## Training",
        "",
        _training(trained, data),
        *_objective(metadata, config, trained),
        *_labels(config, trained),
        "",
        "## Use",
        "",
        *_usage(config, repo_id, revision),
    ]
    return "\n".join(lines) + "\n"


def _architecture(config) -> str:
    parts = []
    if config.get("image_shape"):
        parts.append("x".join(str(int(side)) for side in config["image_shape"]) + " images")
    for key, what in (("num_scales", "scale"), ("filters", "hidden feature map"), ("num_blocks", "residual block")):
        if config.get(key) is not None:
            parts.append(_count(config[key], what))
    if config.get("label_dim"):
        parts.append(f"conditioned on a {config['label_dim']}-entry label vector")
    return ", ".join(parts) if parts else "see config.json"


def _results(metadata, trained, data) -> list:
    measured = trained.get("held_out_bits_per_dim")
    if measured is None:
        return ["The run recorded no held-out bits/dim.", ""]
    error = trained.get("held_out_standard_error")
    value = f"{measured:.4f}" + (f" ± {error:.4f}" if error is not None else "")
    images = trained.get("held_out_images")
    rows = ["| | bits/dim (lower is better) |", "| --- | --- |",
            f"| this model, held-out images of {data['name']}" + (f" ({images})" if images else "") + f" | {value} |"]
    paper = metadata.get("paper_bits_per_dim")
    # The paper's number is about the preset's dataset: shown only for a model trained on that same source.
    if data["as_preset"] and _is_number(paper):
        rows.append(f"| the paper (Table 1), {data['name']} | {paper:.2f} |")
    return rows + [""] + (["(± one standard error over the held-out images.)", ""] if error is not None else [])


def _training(trained, data) -> str:
    schedule = [_count(trained["steps"], "step") if trained.get("steps") is not None else None,
                _count(trained["epochs"], "epoch") if trained.get("epochs") is not None else None,
                f"batch size {trained['batch_size']}" if trained.get("batch_size") is not None else None]
    where = [f"the {trained['backend']} backend" if trained.get("backend") else None,
             f"seed {trained['seed']}" if trained.get("seed") is not None else None]
    text = f"Trained on {data['name']}" + (f" (Hub dataset `{data['hub_id']}`)" if data["hub_id"] else "")
    if any(schedule):
        text += " for " + ", ".join(s for s in schedule if s)
    if any(where):
        text += " on " + ", ".join(w for w in where if w)
    return text + "."


def _objective(metadata, config, trained) -> list:
    # The run's own record if it has one; else what the preset's training settings say it optimizes.
    objective = trained.get("objective")
    if not isinstance(objective, dict):
        training = metadata.get("training") if isinstance(metadata.get("training"), dict) else {}
        objective = training.get("objective")
    if not isinstance(objective, dict):
        return []
    lines = ["", "Trained to optimize:", ""]
    if objective.get("loss"):
        # The loss names the weight penalty's factor; its value is the built model's.
        scale = config.get("l2_scale", objective.get("l2_scale"))
        lines.append(f"- loss: {objective['loss']}" + (f" (l2_scale = {scale:g})" if _is_number(scale) else ""))
    if objective.get("metric"):
        lines.append(f"- reported metric: {objective['metric']}")
    # The model's config is what was built; it wins over the preset's setting when they differ.
    bn_mode = config.get("bn_mode") or objective.get("bn_mode")
    if bn_mode:
        lines.append(f"- coupling-output batch normalization: {bn_mode}")
    return lines if len(lines) > 3 else []


def _labels(config, trained) -> list:
    names = trained.get("label_names")
    if not config.get("label_dim") or not isinstance(names, list) or not names:
        return []
    return ["", f"Conditional model: each label vector has {len(names)} entries, in this order: "
            + ", ".join(f"`{n}`" for n in names) + "."]


def _usage(config, repo_id, revision) -> list:
    handle = f"{HF_PREFIX}{repo_id}" + (f"@{revision}" if revision else "")
    imports, sample = [], ["samples = model.sample(16, temperature=0.7)"]
    if config.get("label_dim"):
        imports = ["import numpy as np", ""]
        sample = [f'labels = np.zeros((16, {config["label_dim"]}), "float32")  # one label vector per sample',
                  "samples = model.sample(16, temperature=0.7, labels=labels)"]
    if revision:
        # keras.saving.load_model("hf://owner/name") downloads the default branch: it takes no revision.
        keras_imports = ["import huggingface_hub", "import keras"]
        keras_load = [f'folder = huggingface_hub.snapshot_download("{repo_id}", revision="{revision}")',
                      f"model = keras.saving.load_model(folder)  # hf://{repo_id} would be the default branch"]
    else:
        keras_imports, keras_load = ["import keras"], [f'model = keras.saving.load_model("{handle}")']
    return [
        "```python", *imports, "from keras_realnvp import RealNVP", "", f'model = RealNVP.from_preset("{handle}")',
        *sample, "```", "",
        "Keras' own loader works too once keras_realnvp is imported (before that, Keras cannot find the model's "
        "classes):", "",
        "```python", *keras_imports, "import keras_realnvp  # registers the classes", "", *keras_load, "```", "",
        "`pip install keras-realnvp`; any Keras 3 backend (JAX, PyTorch, TensorFlow). A private repo needs a Hub "
        "token: `hf auth login`, or set `HF_TOKEN`.",
    ]
