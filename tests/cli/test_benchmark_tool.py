"""`keras-realnvp benchmark` (keras_realnvp.cli.benchmark) and tools/gpu_check.py (no timing is asserted)."""

import importlib.util
import json
import os
import statistics
import sys
from pathlib import Path

import keras
import pytest
from helpers import TINY

from keras_realnvp.benchmarks import compare, measure, report
from keras_realnvp.cli import benchmark

ROOT = Path(__file__).resolve().parents[2]


def test_compare_runs_every_dtype_policy_in_the_same_rounds(tmp_path, capsys):
    """float32 and mixed_bfloat16 workers of the baseline and of this backend, with both ratios."""
    backend = keras.backend.backend()
    status = benchmark.main([
        "--compare", "--preset", "embedded_16", "--batch-size", "4", "--backends", backend,
        "--num-scales", "1", "--filters", "4", "--num-blocks", "1",  # small: four workers build it
        "--dtype-policy", "float32,mixed_bfloat16", "--measure", "eval", "--rounds", "2", "--eval-batches", "1",
        "--warmup", "1", "--log", str(tmp_path / "workers.log"), "--save-json", str(tmp_path / "result.json"),
    ])
    assert status == 0, (tmp_path / "workers.log").read_text()[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    keys = [f"{name} {policy}" for name in ("torch-baseline", backend) for policy in ("float32", "mixed_bfloat16")]
    assert list(result["implementations"]) == keys
    entries = result["implementations"]
    # Every worker built the overridden architecture (the baseline checked it against Keras').
    assert result["architecture"] == {"image_shape": [16, 16, 3], "num_scales": 1, "filters": 4, "num_blocks": 1}
    assert result["architecture_overrides"] == {"num_scales": 1, "filters": 4, "num_blocks": 1}
    parameters = {entries[key]["info"]["parameters"] for key in keys}
    assert len(parameters) == 1 and parameters.pop() < 10_000  # embedded_16 has 683,155
    for key in keys:
        eval_ = entries[key]["eval"]
        assert entries[key]["dtype_policy"] == key.split(" ")[1]
        assert len(eval_["round_ratios"]) == 2
        assert ("ratio_to_float32" in eval_) == key.endswith("mixed_bfloat16")
    for policy in ("float32", "mixed_bfloat16"):  # the baseline of the same policy is 1x, exactly
        assert entries[f"torch-baseline {policy}"]["eval"]["round_ratios"] == [1.0, 1.0]
    # The baseline checked itself against the Keras model at start-up.
    assert entries["torch-baseline float32"]["info"]["checked_against_keras"]["same_parameter_count"]
    # Each speed-up is the median over rounds of float32 time / mixed time of one implementation.
    for name in ("torch-baseline", backend):
        mixed = entries[f"{name} mixed_bfloat16"]["eval"]
        fp32 = entries[f"{name} float32"]["eval"]
        per_round = [m / f for m, f in zip(mixed["round_images_per_s"], fp32["round_images_per_s"])]
        assert abs(mixed["ratio_to_float32"] - statistics.median(per_round)) < 1e-9
        assert entries[f"{name} mixed_bfloat16"]["info"]["parameters"] == entries[f"{name} float32"]["info"][
            "parameters"]
    # The markdown table: a row per implementation and policy, the speed-up column filled for mixed rows.
    table = capsys.readouterr().out
    assert "Preset embedded_16 (num_scales 1, filters 4, num_blocks 1)" in table
    rows = [line for line in table.splitlines() if line.startswith("| plain") or line.startswith("| keras")]
    assert len(rows) == 4 and "eval vs float32" in table
    speedup = entries["torch-baseline mixed_bfloat16"]["eval"]["ratio_to_float32"]
    assert f"{speedup:.2f}x" in rows[1]
    assert "mixed_bfloat16" in rows[3] and "float32" in rows[2]


@pytest.mark.parametrize(("argv", "message"), [
    (["--dtype-policy", "float32,mixed_bfloat16"], "need --compare"),
    (["--compare", "--dtype-policy", "float16"], "--dtype-policy"),
    (["--measure", "train,fit"], "--measure"),
    (["--implementation", "torch-baseline", "--quality-steps", "3"], "Keras model"),
    (["--compare", "--quality-steps", "3"], "drop --compare"),
    (["--compare", "--memory-only", "--num-blocks", "2"], "every paper preset"),
    (["--preset", "embedded_16", "--num-scales", "6"], "num_scales"),
])
def test_bad_arguments_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        benchmark.parse_args(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_quality_seeds_start_alike_and_train_on_their_own_batches():
    """Every seed starts from the same weights (the same held-out bits/dim before training)
    and trains on its own batches and noise."""
    arch = {"image_shape": (8, 8, 3), **TINY}
    runs = [measure.training_quality(arch, batch_size=4, dtype_policy="float32", steps=2, seed=seed)
            for seed in (0, 1)]
    assert [run["seed"] for run in runs] == [0, 1]
    assert runs[0]["held_out_bits_per_dim_before"] == runs[1]["held_out_bits_per_dim_before"]
    assert runs[0]["held_out_bits_per_dim_after"] != runs[1]["held_out_bits_per_dim_after"]
    summary = measure.quality_summary(runs)
    after = [run["held_out_bits_per_dim_after"] for run in runs]
    assert summary["float32"]["spread"] == pytest.approx(abs(after[0] - after[1]), abs=1e-12)
    assert summary["comparison"] == {}  # no other policy to compare
    text = report.format_single({"implementation": "keras", "backend": keras.backend.backend(), "device": "cpu",
                                 "preset": "x", "batch_size": 4, "dtype_policy": "float32", "parameters": 1,
                                 "forward_gflop_per_image": 0.0, "quality": runs, "quality_summary": summary})
    assert "float32 over seeds [0, 1]" in text and text.count("held-out bits/dim ") == 3


def test_workers_run_the_package_command_not_a_checkout_file():
    options = benchmark.parse_args(["--compare", "--preset", "embedded_16"])
    command, env = compare.worker_command(options, "torch-baseline", ["--serve"])
    assert command[:4] == [sys.executable, "-m", "keras_realnvp", "benchmark"] and command[-1] == "--serve"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT) and env["OMP_WAIT_POLICY"]
    assert compare.implementations(["jax", "torch"]) == ["torch-baseline", "torch", "jax"]


def test_compare_memory_reads_each_workers_record(monkeypatch):
    """`--compare --memory-only` runs a worker per preset and reads its whole JSON record."""
    backend = keras.backend.backend()
    monkeypatch.setattr(compare, "preset_names", lambda paper_only: ["embedded_16"])
    monkeypatch.setattr(compare, "MEMORY_BATCH_SIZE", 2)
    options = benchmark.parse_args(["--compare", "--memory-only", "--backends", backend])
    table = compare.compare_memory(options, [backend])
    memory = table["embedded_16"][backend]
    assert "error" not in memory, memory
    # Each backend's own measure (TensorFlow's allocator may count nothing for so small a step).
    how = {"torch": "resident memory", "tensorflow": "TensorFlow allocator", "jax": "XLA buffer assignment"}
    assert how[backend] in memory["where"] and memory["step_peak_mb"] >= 0


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_plans_its_parts_and_writes_one_record(tmp_path, monkeypatch):
    """The driver's plan, time limits and JSON record, with stand-in parts (no backend is started)."""
    gpu_check = _gpu_check()
    monkeypatch.setenv("OUT", str(tmp_path / "out"))
    args = gpu_check.parse_args([])
    assert args.output == tmp_path / "out" / "gpu_check.json" and args.backends == ["torch", "jax"]
    names = [part[0] for part in gpu_check.plan(args, tmp_path)]
    assert names == ["torch model", "jax model", "compare cifar10", "compare celeba_64"]
    compare_cifar = gpu_check.plan(args, tmp_path)[2][1]
    assert compare_cifar[1:4] == ["-m", "keras_realnvp", "benchmark"] and "64" in compare_cifar
    smoke = gpu_check.parse_args(["--cpu-smoke"])
    assert [part[0] for part in gpu_check.plan(smoke, tmp_path)] == ["torch model", "compare embedded_16"]

    python = [sys.executable, "-c"]
    result_file = tmp_path / "r.json"
    result_file.write_text('{"x": 1}')
    parts = [
        ("fine", python + [f"print({gpu_check.MARK!r} + '{{\"loss\": 1.5}}')"], dict(os.environ), 30, None),
        ("file", python + ["pass"], dict(os.environ), 30, result_file),
        ("slow", python + ["import time; time.sleep(60)"], dict(os.environ), 1, None),
        ("broken", python + ["raise SystemExit('no GPU')"], dict(os.environ), 30, None),
    ]
    monkeypatch.setattr(gpu_check, "plan", lambda args, scratch: parts)
    status = gpu_check.main(["--output", str(tmp_path / "record.json"), "--install-status", "0"])
    record = json.loads((tmp_path / "record.json").read_text())
    assert status == 1 and record["install"]["status"] == 0 and "versions" in record and "gpus" in record
    assert record["parts"]["fine"]["result"] == {"loss": 1.5}
    assert record["parts"]["file"]["result"] == {"x": 1}
    assert record["parts"]["slow"]["error"].startswith("timed out")
    assert record["parts"]["broken"]["stderr_tail"] == ["no GPU"]
