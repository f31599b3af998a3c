"""keras_realnvp.diagnostics and `keras-realnvp diagnose`: the checks measure what they claim."""

import json
import math

import keras
import numpy as np
import pytest
from helpers import jacobian, randomize_weights, to_numpy

from keras_realnvp import RealNVP
from keras_realnvp.backend.autodiff import float64_available
from keras_realnvp.backend.autodiff import jacobian as backend_jacobian
from keras_realnvp.bijectors import AffineCoupling, RunningBatchNorm
from keras_realnvp.cli import diagnose as diagnose_command
from keras_realnvp.diagnostics import _log_det_check, default_jacobian_size, diagnose, format_report


@pytest.fixture(scope="module")
def model():
    model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1, seed=0)
    randomize_weights(model, seed=3, noise=0.2)
    return model


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def report(model, pixels):
    return diagnose(model, pixels, jacobian_size=4, jacobian_examples=2, temperatures=(10.0,))


def test_the_report_is_json_and_its_table_has_every_check(report):
    assert json.loads(json.dumps(report)) == report
    table = format_report(report, title="tiny")
    for row in ("round trip max", "log-det, brute-force slogdet", "coupling s range (10 couplings)",
                "flow batch norm variances", "s/t net batch norm means", "samples at T=10"):
        assert row in table


def test_round_trip_and_bits_per_dim(report, model, pixels):
    assert report["round_trip"]["finite"] and report["round_trip"]["max_abs_error"] < 1e-3  # pixel levels
    assert report["round_trip"]["mean_abs_error"] <= report["round_trip"]["max_abs_error"]
    assert report["images"] == {"count": 3, "shape": [8, 8, 3]}
    assert math.isfinite(report["bits_per_dim"]["mean"])


def test_log_det_matches_the_brute_force_jacobian(report):
    check = report["log_det"]
    assert check["crop"] == [4, 4, 3] and check["dims"] == 48 and check["examples"] == 2
    assert check["dtype"] == ("float64" if float64_available() else "float32")
    tolerance = 1e-6 if check["dtype"] == "float64" else 1e-2  # nats
    assert check["max_abs_difference"] < tolerance
    assert check["max_abs_difference_float32"] < 1e-2
    np.testing.assert_allclose(check["model"], check["brute_force"], atol=tolerance)


@pytest.mark.parametrize("chunk", [7, 48, 100])
def test_batched_reverse_mode_jacobian_equals_the_tests_own_autodiff_jacobian(model, pixels, chunk):
    # backend.autodiff.jacobian pulls one-hot cotangents back through `chunk` copies of the example
    # (chunk 7 does not divide the 48 values: the last pass is zero-padded); the oracle is
    # tests/helpers.jacobian (jax.jacfwd / torch / tf.GradientTape.jacobian, one example).
    dtype = "float64" if float64_available() else "float32"
    clone = RealNVP.from_config({**model.get_config(), "image_shape": [4, 4, 3], "dtype": dtype})
    clone.set_weights([np.asarray(w).astype(dtype) if np.asarray(w).dtype.kind == "f" else w
                       for w in model.get_weights()])
    example = (pixels[0, :4, :4] / 256.0 * 255.0 + 0.5).astype(dtype)

    def batch_fn(v):
        latents, _ = clone.forward_flow(v, training=False)
        return keras.ops.concatenate([keras.ops.reshape(z, (v.shape[0], -1)) for z in latents], axis=1)

    got = backend_jacobian(batch_fn, example, chunk=chunk)
    expected = jacobian(lambda v: clone.forward_flow(v, training=False)[0], example)
    assert got.shape == (48, 48)
    # Rows in the wrong place or of the wrong example would be off by O(1) (the diagonal is ~1).
    # Keras computes a few reductions of float64 input in float32 on JAX, and forward and
    # reverse mode round those differently: up to ~1e-9 absolute there, 1e-15 elsewhere.
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)


def test_a_wrong_log_det_is_caught(model, pixels, monkeypatch):
    original = RunningBatchNorm.call

    def off_by_one(self, x, labels=None, training=False):
        y, log_det = original(self, x, labels=labels, training=training)
        return y, log_det + 1.0

    monkeypatch.setattr(RunningBatchNorm, "call", off_by_one)
    fresh = RealNVP.from_config(model.get_config())
    fresh.set_weights(model.get_weights())
    check = _log_det_check(fresh, pixels[:1].astype("float32"), size=4)
    # 10 batch norms, each one nat off: the brute force is unaffected (the map is the same).
    np.testing.assert_allclose(np.subtract(check["model"], check["brute_force"]), 10.0, atol=1e-2)


def test_coupling_scales_lie_within_their_learned_bounds(report, model):
    scales = report["coupling_scales"]
    couplings = [layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, AffineCoupling)]
    by_name = {c.name: c for c in couplings}
    assert sorted(layer["name"] for layer in scales["layers"]) == sorted(by_name)
    for layer in scales["layers"]:
        coupling = by_name[layer["name"]]
        bound = float(np.abs(to_numpy(coupling.scale)).max())  # |s| = |scale * tanh(.)| <= max |scale|
        assert layer["max_abs_scale_parameter"] == pytest.approx(bound)
        assert -bound - 1e-6 <= layer["min"] < layer["max"] <= bound + 1e-6
    assert scales["max_abs"] == max(max(-layer["min"], layer["max"]) for layer in scales["layers"]) > 0


def test_batch_norm_statistics_are_the_stored_ones(report, model):
    def values(kind, name):  # by variable path: the s/t networks' batch norms live under "st_net"
        chosen = [v for v in model.weights if v.path.endswith(name) and (("st_net" in v.path) == (kind == "networks"))]
        return np.concatenate([to_numpy(v).ravel() for v in chosen])

    for kind, count in (("flow", 10), ("networks", None)):
        stats = report["batch_norm"][kind]
        means, variances = values(kind, "moving_mean"), values(kind, "moving_variance")
        assert stats["finite"] and (count is None or stats["count"] == count)
        assert (stats["mean_min"], stats["mean_max"]) == pytest.approx((means.min(), means.max()))
        assert (stats["variance_min"], stats["variance_max"]) == pytest.approx((variances.min(), variances.max()))
        assert 0.5 <= stats["variance_min"] <= stats["variance_max"] <= 2.0  # randomize_weights' range
    assert report["batch_norm"]["flow"]["updates_min"] == report["batch_norm"]["flow"]["updates_max"] == 0


def test_edges_and_hot_samples_are_finite(report, model):
    extremes = report["extremes"]
    assert extremes["log_prob_finite"] and extremes["encode_finite"]
    bound = 256 * model.alpha / (1 - 2 * model.alpha) + 1e-3  # the logit's full preimage
    for sample in extremes["samples"]:
        assert sample["finite"] and -bound <= sample["min"] <= sample["max"] <= 256 + bound


def test_default_crop_sizes_and_skips():
    assert [default_jacobian_size(n) for n in (1, 2, 3, 4, 5)] == [8, 8, 8, 16, 32]


def test_large_crops_are_skipped_and_bad_arguments_refused(model, pixels):
    report = diagnose(model, pixels[:1], jacobian_max_dims=100, temperatures=())
    assert "skipped" in report["log_det"] and "192 dimensions > max_dims=100" in report["log_det"]["skipped"]
    assert "skipped" in format_report(report)
    with pytest.raises(ValueError, match="jacobian_examples must be at least 1"):
        diagnose(model, pixels, jacobian_examples=0)
    with pytest.raises(ValueError, match="1 channels but the model was built for 3"):
        diagnose(model, pixels[..., :1])
    with pytest.raises(ValueError, match="must be a multiple of 2"):
        diagnose(model, pixels, jacobian_size=5)


def _diagnose(argv):
    """The reports of `keras-realnvp diagnose ARGV`, run in this process."""
    return diagnose_command.run(diagnose_command.parse_args(argv))


def test_the_tool_reports_the_trained_weights_of_a_preset_folder(model, tmp_path, capsys):
    folder = model.save_to_preset(tmp_path / "preset")
    records = _diagnose([str(folder), "--weights", "trained", "--json", "--batch-size", "2",
                         "--temperatures", "3", "--jacobian-size", "4"])
    printed = json.loads(capsys.readouterr().out)
    assert [r["weights"] for r in printed["reports"]] == ["trained"] == [r["weights"] for r in records]
    (trained,) = printed["reports"]
    assert trained["coupling_scales"]["max_abs"] > 0 and trained["failures"] == []
    assert trained["images"]["count"] == 2 and trained["dataset"].startswith("embedded")
    assert trained["log_det"]["max_abs_difference"] < 1e-3


def test_train_steps_move_a_conditional_model_off_the_identity_and_the_checks_still_hold(tmp_path, capsys):
    # At initialization every coupling scale is exactly 0; after Adam steps on the embedded
    # patches (labels: the photo of each patch, one-hot in the first 2 of 3 entries) it is not.
    conditional = RealNVP(image_shape=(8, 8, 3), num_scales=1, filters=4, num_blocks=1, label_dim=3, seed=0)
    folder = conditional.save_to_preset(tmp_path / "conditional")
    common = [str(folder), "--weights", "init", "--json", "--batch-size", "2", "--temperatures", "3",
              "--jacobian-size", "4"]
    (untrained,) = _diagnose(common)
    (trained,) = _diagnose([*common, "--train-steps", "3", "--train-batch-size", "4"])
    capsys.readouterr()
    assert untrained["coupling_scales"]["max_abs"] == 0 and untrained["train_steps"] == 0
    assert trained["train_steps"] == 3 and trained["coupling_scales"]["max_abs"] > 0
    assert trained["failures"] == [] and trained["log_det"]["max_abs_difference"] < 1e-3
    assert trained["round_trip"]["max_abs_error"] < 1e-3  # pixel levels
    keras.backend.clear_session(free_memory=False)


def test_the_tool_help_and_errors(capsys):
    tool = diagnose_command
    with pytest.raises(SystemExit) as exit_info:
        tool.parse_args(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--json", "--weights", "--jacobian-max-dims", "--calibrate", "--perturb", "--temperatures"):
        assert option in help_text
    with pytest.raises(SystemExit) as exit_info:
        tool.main(["no_such_preset"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: Unknown preset 'no_such_preset'")
    with pytest.raises(SystemExit):
        tool.parse_args(["cifar10", "--temperatures", "-1"])
    keras.backend.clear_session(free_memory=False)
