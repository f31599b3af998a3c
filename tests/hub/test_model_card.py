"""The model card: written from what the training run recorded, Hub metadata that parses back, loading that works.

Every card here is parsed back with `huggingface_hub.ModelCard`, as the Hub reads it. Nothing reaches
the Hub: the snippets run against a local preset folder through a replaced `hf_hub_download`.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import keras
import numpy as np
import pytest
import yaml
from huggingface_hub import ModelCard

from keras_realnvp import RealNVP
from keras_realnvp.hub.model_card import model_card, run_dataset

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED_SPEC = {"name": "embedded photo patches", "source": "embedded", "patch_size": 16}
CIFAR_SPEC = {"name": "CIFAR-10", "hub_id": "uoft-cs/cifar10", "eval_split": "test"}
TINY_CONFIG = {"image_shape": [8, 8, 1], "num_scales": 1, "filters": 4, "num_blocks": 1, "bn_mode": "batch"}
OBJECTIVE = {"loss": "mean negative log-likelihood in nats per image + l2 penalty",
             "metric": "bits_per_dim = NLL / (D ln 2)", "bn_mode": "running_average"}


def _trained(dataset, **changes):
    """A `trained` record with the keys `keras-realnvp train` writes."""
    return {"dataset": dataset, "steps": 408, "epochs": 4, "batch_size": 64, "backend": "jax", "seed": 0,
            "held_out_bits_per_dim": 3.5062446, "held_out_standard_error": 0.0627625, "held_out_images": 416,
            **changes}


def _metadata(spec, trained, **changes):
    return {"preset": "embedded_16", "description": "16x16 patches of scikit-learn's two sample photos; weights "
            "ship with the package.", "dataset": spec, "paper_bits_per_dim": 3.49, "trained": trained, **changes}


def _card(metadata, config=TINY_CONFIG, repo_id="me/flow", revision=None):
    text = model_card(metadata, config, repo_id, revision)
    card = ModelCard(text)
    header = yaml.safe_load(text.split("---\n")[1])  # the YAML as any other reader sees it
    assert card.data.to_dict() == header
    return text, card, header


def _code_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


# The dataset named is the one the run trained on.


@pytest.mark.parametrize("source", ["/home/me/data/my_folder", "/my_folder", "my_folder", "./faces", "C:\\data\\faces",
                                    "~/faces", "data/faces/2024"])
def test_a_local_folder_is_named_only_as_a_local_image_folder(source):
    text, card, header = _card(_metadata(EMBEDDED_SPEC, _trained(source)))
    assert "datasets" not in header
    result = card.data.eval_results[0]
    assert (result.dataset_name, result.dataset_type) == ("a local image folder", "local-image-folder")
    assert "Trained on a local image folder for 408 steps, 4 epochs, batch size 64 on the jax backend, seed 0." in text
    # Neither the folder's name nor anything of the preset's own dataset (the default it was not trained on).
    for leaked in ("my_folder", "faces", "/home/me", "embedded photo patches", "scikit-learn", "3.49", "Table 1"):
        assert leaked not in text, leaked


def test_a_folder_that_exists_here_is_a_folder_even_when_shaped_like_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos" / "faces").mkdir(parents=True)
    text, card, header = _card(_metadata(CIFAR_SPEC, _trained("photos/faces")))
    assert "datasets" not in header and "photos" not in text and "a local image folder" in text
    assert run_dataset("photos/faces", CIFAR_SPEC)["kind"] == "folder"
    assert run_dataset("photos/other", CIFAR_SPEC)["kind"] == "hub"  # no such folder: the trainer read a Hub id


def test_another_hub_dataset_is_named_and_listed_not_the_presets():
    text, card, header = _card(_metadata(CIFAR_SPEC, _trained("me/faces-64")))
    assert header["datasets"] == ["me/faces-64"]
    result = card.data.eval_results[0]
    assert (result.dataset_name, result.dataset_type, result.metric_value) == ("me/faces-64", "me/faces-64", 3.5062)
    assert "Trained on me/faces-64 (Hub dataset `me/faces-64`) for 408 steps" in text
    for default in ("CIFAR-10", "uoft-cs/cifar10", "3.49", "16x16 patches"):  # the preset's defaults
        assert default not in text, default


def test_the_presets_own_dataset_uses_its_name_and_the_papers_number():
    text, card, header = _card(_metadata(CIFAR_SPEC, _trained("uoft-cs/cifar10")))
    assert header["datasets"] == ["uoft-cs/cifar10"]
    assert (card.data.eval_results[0].dataset_name, card.data.eval_results[0].dataset_type) == (
        "CIFAR-10", "uoft-cs/cifar10")
    assert "| this model, held-out images of CIFAR-10 (416) | 3.5062 ± 0.0628 |" in text
    assert "| the paper (Table 1), CIFAR-10 | 3.49 |" in text
    # The architecture is the built model's (its config), named after the preset it started from.
    assert ("Architecture: 8x8x1 images, 1 scale, 4 hidden feature maps, 1 residual block "
            "(the `embedded_16` preset).") in text


@pytest.mark.parametrize("spec, name", [(EMBEDDED_SPEC, "embedded photo patches"),
                                        (CIFAR_SPEC, "the embedded photo patches (scikit-learn's samples)")])
def test_the_embedded_patches_are_named_as_such_and_never_listed_as_a_hub_dataset(spec, name):
    text, card, header = _card(_metadata(spec, _trained("embedded")))
    assert "datasets" not in header
    assert card.data.eval_results[0].dataset_name == name and f"Trained on {name} for 408 steps" in text
    assert ("CIFAR-10" in text) is False


def test_bits_per_dim_come_from_the_run_only():
    metadata = _metadata(CIFAR_SPEC, _trained("uoft-cs/cifar10", held_out_bits_per_dim=3.61234))
    metadata["dataset"] = {**CIFAR_SPEC, "held_out_bits_per_dim": 2.0}  # a stray number elsewhere is not read
    text, card, _ = _card(metadata)
    assert card.data.eval_results[0].metric_value == 3.6123 and "3.6123 ± 0.0628" in text
    no_result = _trained("uoft-cs/cifar10")
    del no_result["held_out_bits_per_dim"], no_result["held_out_standard_error"]
    text, card, header = _card(_metadata(CIFAR_SPEC, no_result))
    assert "model-index" not in header and card.data.eval_results is None
    assert "The run recorded no held-out bits/dim." in text and "3.49" not in text


@pytest.mark.parametrize("metadata, reason", [
    (_metadata(CIFAR_SPEC, None), "has no 'trained' entry"),
    ({"preset": "cifar10", "dataset": CIFAR_SPEC}, "has no 'trained' entry"),
    (_metadata(CIFAR_SPEC, {"steps": 3}), "names no dataset it trained on ('dataset' is None)"),
    (_metadata(CIFAR_SPEC, _trained("uoft-cs/cifar10", held_out_bits_per_dim=float("nan"))),
     "held_out_bits_per_dim nan"),
])
def test_a_preset_without_a_training_record_is_refused(metadata, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        model_card(metadata, TINY_CONFIG, "me/flow")


# The Hub metadata.


def test_header_is_the_hubs_metadata_for_a_keras_image_generation_model():
    text, card, header = _card(_metadata(CIFAR_SPEC, _trained("uoft-cs/cifar10")), repo_id="me/cifar-flow")
    assert {key: header[key] for key in ("library_name", "license", "pipeline_tag", "tags")} == {
        "library_name": "keras", "license": "apache-2.0", "pipeline_tag": "unconditional-image-generation",
        "tags": ["real-nvp", "normalizing-flow", "keras", "keras-realnvp"]}
    assert header["model-index"] == [{"name": "cifar-flow", "results": [{
        "task": {"type": "unconditional-image-generation", "name": "Density estimation"},
        "dataset": {"name": "CIFAR-10", "type": "uoft-cs/cifar10"},
        "metrics": [{"type": "bits_per_dim", "value": 3.5062, "name": "held-out bits/dim (lower is better)"}]}]}]
    assert "density-estimation" not in text  # not a Hub task
    # The Hub reads an arXiv link in the card as the paper (it adds the arxiv:ID tag itself).
    assert "[Real NVP](https://arxiv.org/abs/1605.08803)" in card.text and "arXiv:1605.08803" in card.text


@pytest.mark.parametrize("name", ['LSUN: church outdoor', 'ImageNet 32x32: "van den Oord" # downsampled', "- a: b"])
def test_a_dataset_name_yaml_would_misread_round_trips(name):
    spec = {**CIFAR_SPEC, "name": name}
    _, card, header = _card(_metadata(spec, _trained("uoft-cs/cifar10")))
    assert card.data.eval_results[0].dataset_name == name
    assert header["model-index"][0]["results"][0]["dataset"]["name"] == name


def test_the_card_says_how_to_log_in_with_the_current_cli():
    text, _, _ = _card(_metadata(CIFAR_SPEC, _trained("uoft-cs/cifar10")))
    assert "`hf auth login`, or set `HF_TOKEN`" in text and "huggingface-cli" not in text


def test_the_objective_is_stated_when_recorded():
    training = {"objective": OBJECTIVE}
    text, _, _ = _card(_metadata(CIFAR_SPEC, _trained("uoft-cs/cifar10"), training=training),
                       config={**TINY_CONFIG, "l2_scale": 5e-5})
    assert ("Trained to optimize:\n\n- loss: mean negative log-likelihood in nats per image + l2 penalty "
            "(l2_scale = 5e-05)\n- reported metric: bits_per_dim = NLL / (D ln 2)\n"
            # The built model's batch-norm mode, not the preset's setting.
            "- coupling-output batch normalization: batch\n") in text
    recorded = {**OBJECTIVE, "loss": "the run's own loss"}  # the run's record wins over the preset's settings
    text, _, _ = _card(_metadata(CIFAR_SPEC, _trained("uoft-cs/cifar10", objective=recorded), training=training))
    assert "- loss: the run's own loss\n" in text
    text, _, _ = _card(_metadata(CIFAR_SPEC, _trained("uoft-cs/cifar10"), training={"batch_size": 64}))
    assert "Trained to optimize" not in text


# Loading as the card says.


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory):
    """A tiny trained-looking preset folder standing for the Hub repo, and its model."""
    model = RealNVP(**{**TINY_CONFIG, "label_dim": 3}, seed=0)
    folder = model.save_to_preset(tmp_path_factory.mktemp("hub") / "repo", {"trained": _trained("embedded")})
    return folder, model


def test_the_usage_snippets_name_the_branch_and_import_keras_realnvp_first():
    text, _, _ = _card(_metadata(CIFAR_SPEC, _trained("uoft-cs/cifar10")), repo_id="me/flow")
    presets, keras_loader = _code_blocks(text)
    assert 'model = RealNVP.from_preset("hf://me/flow")' in presets
    lines = keras_loader.splitlines()
    assert lines.index("import keras_realnvp  # registers the classes") < lines.index(
        'model = keras.saving.load_model("hf://me/flow")')
    text, _, _ = _card(_metadata(CIFAR_SPEC, _trained("uoft-cs/cifar10")), repo_id="me/flow", revision="v1")
    presets, keras_loader = _code_blocks(text)
    assert 'RealNVP.from_preset("hf://me/flow@v1")' in presets
    # Keras' hf:// loader reads the default branch only: the branch is downloaded by revision.
    assert 'huggingface_hub.snapshot_download("me/flow", revision="v1")' in keras_loader
    assert "load_model(folder)" in keras_loader and 'load_model("hf://' not in keras_loader


def test_the_usage_snippets_run(hub_folder, monkeypatch):
    folder, model = hub_folder
    asked = []

    def hf_hub_download(repo_id, filename, revision=None, **kwargs):
        asked.append((repo_id, filename, revision))
        return str(folder / filename)

    def snapshot_download(repo_id, revision=None, **kwargs):
        asked.append((repo_id, "*", revision))
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    metadata = _metadata(EMBEDDED_SPEC, _trained("embedded", label_names=["red", "green", "blue"]))
    config = {**TINY_CONFIG, "label_dim": 3}
    for revision in (None, "v1"):
        text, _, _ = _card(metadata, config, "me/flow", revision)
        assert "each label vector has 3 entries, in this order: `red`, `green`, `blue`." in text
        presets, keras_loader = _code_blocks(text)
        scope = {}
        exec(presets, scope)  # the card's own example, against the local folder
        samples = keras.ops.convert_to_numpy(scope["samples"])
        assert samples.shape == (16, 8, 8, 1) and np.isfinite(samples).all()
        exec(keras_loader, scope)
        assert type(scope["model"]) is RealNVP and scope["model"].label_dim == 3
        for loaded, original in zip(scope["model"].weights, model.weights, strict=True):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded), keras.ops.convert_to_numpy(original))
        assert {revision} == {r for _, _, r in asked} and {"me/flow"} == {repo for repo, _, _ in asked}
        asked.clear()


_FRESH_INTERPRETER = """
import sys
import huggingface_hub

folder, snippet = sys.argv[1], sys.argv[2]
huggingface_hub.snapshot_download = lambda repo_id, **kwargs: folder  # the Hub repo is the local folder
without_import = "\\n".join(line for line in snippet.splitlines() if "import keras_realnvp" not in line)
try:
    exec(without_import, {})
    print("without the import: loaded")
except TypeError as error:
    print("without the import:", str(error).split(".")[0])
scope = {}
exec(snippet, scope)
print("with the import:", type(scope["model"]).__name__, scope["model"].count_params())
"""


def test_keras_load_model_works_in_a_fresh_interpreter_only_with_the_import_the_card_shows(hub_folder):
    folder, model = hub_folder
    text, _, _ = _card(_metadata(EMBEDDED_SPEC, _trained("embedded")), {**TINY_CONFIG, "label_dim": 3})
    keras_loader = _code_blocks(text)[1]
    result = subprocess.run([sys.executable, "-c", _FRESH_INTERPRETER, str(folder), keras_loader], capture_output=True,
                            text=True, timeout=300, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    # Keras alone cannot find the class (why the card imports keras_realnvp); with the import it loads.
    assert result.stdout.splitlines()[-2:] == ["without the import: Could not locate class 'RealNVP'",
                                               f"with the import: RealNVP {model.count_params()}"], result.stdout
