"""End to end on the current backend: train, preset folder, reload, Hub cache, publish, resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import TINY_RUN, lay_out_hub_cache, run_tiny, to_numpy

from keras_realnvp import RealNVP
from keras_realnvp.cli import train as train_tool
from keras_realnvp.data.sources import open_source
from keras_realnvp.data.training_batches import evaluation_images
from keras_realnvp.evaluation import held_out_bits_per_dim

ROOT = Path(__file__).resolve().parents[2]


def _held_out(model, seed=TINY_RUN["seed"]):
    """The held-out bits/dim the tiny run records, recomputed for `model`."""
    pixels = evaluation_images(open_source("embedded", {"patch_size": 16}, "eval"), model.image_shape,
                               limit=TINY_RUN["eval_examples"])
    return held_out_bits_per_dim(model, pixels, seed=seed)[0]


@pytest.fixture
def trained(tiny_run):
    return tiny_run


def test_training_writes_a_preset_that_reproduces_its_recorded_bits_per_dim(trained):
    output, results = trained
    folder = output / "preset"
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["trained"]["steps"] == 6 and metadata["trained"]["dataset"] == "embedded"
    assert metadata["trained"]["backend"] == keras.backend.backend()
    grids = sorted(p.name for p in output.glob("samples_epoch_*.png"))
    assert grids == ["samples_epoch_001.png", "samples_epoch_002.png"]
    # The settings the run started with, for --resume to check; the lock went with the run.
    settings = json.loads((output / "run.json").read_text())["settings"]
    assert settings["model"]["filters"] == 4 and settings["model"]["image_shape"] == [16, 16, 3]
    assert (settings["batch_size"], settings["steps_per_epoch"], settings["seed"]) == (8, 3, 1)
    assert settings["dataset"] == "embedded" and settings["learning_rate"] == 1e-3
    assert not (output / "run.lock").exists()
    assert len(results["history"]) == 2
    model = RealNVP.from_preset(str(folder))
    np.testing.assert_allclose(_held_out(model), metadata["trained"]["held_out_bits_per_dim"], atol=1e-5)


def test_hub_cache_and_publish_dry_run_load_the_same(trained, tmp_path):
    output, results = trained
    recorded = results["held_out_bits_per_dim"]
    staging = tmp_path / "staging"
    result = subprocess.run(
        [sys.executable, "-m", "keras_realnvp", "publish", str(output / "preset"), "hf://me/tiny", "--dry-run",
         str(staging)], capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    uploaded = sorted(p.name for p in staging.iterdir())
    assert uploaded == ["README.md", "config.json", "metadata.json", "model.weights.h5"]
    card = (staging / "README.md").read_text()
    assert "library_name: keras" in card and f"{recorded:.4f}" in card and 'from_preset("hf://me/tiny")' in card
    # Both repos in one offline Hub cache, loaded by one fresh process: the published staging
    # folder and the train tool's preset folder as it is.
    cache = tmp_path / "hub"
    handles = {"hf://me/tiny": staging, "hf://me/raw": output / "preset"}
    for handle, folder in handles.items():
        lay_out_hub_cache(folder, cache, handle[len("hf://"):])
    code = (
        "import sys, json; sys.path[:0] = sys.argv[1:3];"
        "from test_train_tool import _held_out; from keras_realnvp import RealNVP;"
        "print(json.dumps([_held_out(RealNVP.from_preset(h)) for h in sys.argv[3:]]))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    paths = [str(ROOT / "tests" / "cli"), str(ROOT / "tests")]
    result = subprocess.run([sys.executable, "-c", code, *paths, *handles], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_allclose(json.loads(result.stdout.strip().splitlines()[-1]), [recorded] * 2, atol=1e-5)


def test_a_run_stopped_mid_epoch_and_resumed_ends_with_the_same_weights(trained, tmp_path):
    output, _ = trained
    reference = RealNVP.from_preset(str(output / "preset"))
    interrupted = tmp_path / "interrupted"
    stopped = run_tiny(interrupted, stop_after_steps=4, checkpoint_every=2)  # mid-epoch 2 of 2 (3 steps each)
    assert stopped["stopped_at_step"] == 4
    # Resumed through the tool with nothing but the folder: every setting is the recorded one.
    train_tool.main(["--output", str(interrupted), "--resume"])
    resumed = RealNVP.from_preset(str(interrupted / "preset"))
    for a, b in zip(reference.weights, resumed.weights):
        np.testing.assert_allclose(to_numpy(b), to_numpy(a), atol=1e-6, rtol=0, err_msg=a.path)


def test_train_tool_help_and_bad_arguments(tmp_path):
    result = subprocess.run([sys.executable, "-m", "keras_realnvp", "train", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and all(flag in result.stdout for flag in ("--resume", "--overwrite", "--distribute"))
    result = subprocess.run([sys.executable, "-m", "keras_realnvp", "train", "--preset", "nope", "--output",
                             str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    # A usage error: one line on stderr, status 2 (as argparse's own), no traceback.
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and last.startswith("error: ") and "Unknown preset 'nope'" in last, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="keras.distribution.DataParallel runs on JAX only")
def test_data_parallel_on_two_devices_computes_the_single_device_update(tmp_path):
    code = """
import sys, json, numpy as np, keras
from keras_realnvp.training import TrainingRun
run = TrainingRun("embedded_16", output=sys.argv[1], epochs=1, steps_per_epoch=2, batch_size=8, eval_examples=16,
                  overrides={"num_scales": 1, "filters": 4, "num_blocks": 1}, verbose=0, seed=3,
                  distribute=sys.argv[2] == "1")
results = run.run()
from keras_realnvp import RealNVP
m = RealNVP.from_preset(sys.argv[1] + "/preset")
print(json.dumps({"devices": len(keras.distribution.list_devices()), "history": results["history"],
                  "weights": np.concatenate([np.ravel(keras.ops.convert_to_numpy(v)) for v in m.weights]).tolist()}))
"""
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()
    env = {**os.environ, "XLA_FLAGS": flags, "KERAS_BACKEND": "jax"}
    outputs = []
    for distribute in ("1", "0"):
        result = subprocess.run([sys.executable, "-c", code, str(tmp_path / distribute), distribute], env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    assert outputs[0]["devices"] == 2
    (one,), (two,) = outputs[1]["history"], outputs[0]["history"]
    # float32 reductions over the global batch run in another order: agree to 1e-5 relative.
    np.testing.assert_allclose(two["train_bits_per_dim"], one["train_bits_per_dim"], rtol=1e-5)
    np.testing.assert_allclose(two["held_out_bits_per_dim"], one["held_out_bits_per_dim"], rtol=1e-5)
    difference = np.abs(np.array(outputs[0]["weights"]) - np.array(outputs[1]["weights"]))
    # Same update: batch statistics over the global batch, gradients summed across devices.
    # Adam turns a gradient that is zero up to rounding into a +-lr step, so the few weights
    # whose gradient is ~0 may differ by up to ~lr; all others agree to float32 rounding.
    assert np.mean(difference < 1e-5) > 0.98, np.quantile(difference, [0.5, 0.9, 0.98, 0.99])
    assert difference.max() < 2e-3


TF_DISTRIBUTED = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]  # two logical devices, before TensorFlow initializes
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from keras_realnvp.training import TrainingRun
models, compile_ = [], TrainingRun._compile
def capture(self, model, training):  # the model that was trained, to read every replica's copy
    models.append(model)
    return compile_(self, model, training)
TrainingRun._compile = capture
out = {}
for distribute in (True, False):  # the same process: 2 devices, then 1 (the default device)
    results = TrainingRun("embedded_16", output=f"{sys.argv[1]}/{int(distribute)}", epochs=1, steps_per_epoch=2,
                          batch_size=8, eval_examples=16, overrides={"num_scales": 1, "filters": 4, "num_blocks": 1},
                          verbose=0, seed=3, distribute=distribute).run()
    copies = [[c.numpy() for c in getattr(w.value, "values", [w.value])] for w in models[-1].weights]
    out[str(distribute)] = {
        "history": results["history"], "replicas": sorted({len(c) for c in copies}),
        "copies_agree": all(np.array_equal(c[0], other) for c in copies for other in c[1:]),
        "weights": np.concatenate([np.ravel(c[0]) for c in copies]).tolist(),
    }
print(json.dumps(out))
"""


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute runs on TensorFlow only")
def test_mirrored_strategy_on_two_devices_computes_the_single_device_update(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run([sys.executable, "-c", TF_DISTRIBUTED, str(tmp_path)], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout.strip().splitlines()[-1])
    two, one = outputs["True"], outputs["False"]
    assert two["replicas"] == [2] and one["replicas"] == [1]
    # Every variable (RunningBatchNorm's and the s/t batch norms' averages included) is the same
    # on both replicas: the batch statistics are all-reduced, so each replica stores the same values.
    assert two["copies_agree"]
    (a,), (b,) = two["history"], one["history"]
    # Loss and batch statistics of the global batch, the same dequantization noise: the same numbers
    # up to float32 reductions in another order (measured: 1e-7 relative on the loss, 1e-6 held-out).
    np.testing.assert_allclose(a["train_bits_per_dim"], b["train_bits_per_dim"], rtol=1e-5)
    np.testing.assert_allclose(a["held_out_bits_per_dim"], b["held_out_bits_per_dim"], rtol=1e-5)
    difference = np.abs(np.array(two["weights"]) - np.array(one["weights"]))
    # As on JAX: Adam turns a gradient that is zero up to rounding into a +-lr step, so a few
    # weights may differ by up to ~lr per step (measured: 99% within 1e-5, the largest 7e-5).
    assert np.mean(difference < 1e-5) > 0.97, np.quantile(difference, [0.5, 0.9, 0.97, 0.99])
    assert difference.max() < 2e-3


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="the error is PyTorch's")
def test_distribute_on_torch_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="torch backend has no data-parallel training in Keras"):
        run_tiny(tmp_path, distribute=True)
