"""tools/benchmark.py --compare: the workers, the ratios and the table (no timing is asserted)."""

import json
import statistics
import subprocess
import sys
from pathlib import Path

import keras

ROOT = Path(__file__).resolve().parents[1]


def test_compare_runs_every_dtype_policy_in_the_same_rounds(tmp_path):
    """float32 and mixed_bfloat16 workers of the baseline and of this backend, with both ratios."""
    backend = keras.backend.backend()
    command = [
        sys.executable, str(ROOT / "tools" / "benchmark.py"), "--compare", "--preset", "smoke",
        "--backends", backend, "--dtype-policy", "float32,mixed_bfloat16", "--measure", "eval",
        "--rounds", "2", "--eval-batches", "1", "--warmup", "1", "--log", str(tmp_path / "workers.log"),
        "--save-json", str(tmp_path / "result.json"),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    keys = [f"{name} {policy}" for name in ("torch-baseline", backend) for policy in ("float32", "mixed_bfloat16")]
    assert list(result["implementations"]) == keys
    entries = result["implementations"]
    for key in keys:
        eval_ = entries[key]["eval"]
        assert entries[key]["dtype_policy"] == key.split(" ")[1]
        assert len(eval_["round_ratios"]) == 2
        assert ("ratio_to_float32" in eval_) == key.endswith("mixed_bfloat16")
    for policy in ("float32", "mixed_bfloat16"):  # the baseline of the same policy is 1x, exactly
        assert entries[f"torch-baseline {policy}"]["eval"]["round_ratios"] == [1.0, 1.0]
    # Each speed-up is the median over rounds of float32 time / mixed time of one implementation.
    for name in ("torch-baseline", backend):
        mixed = entries[f"{name} mixed_bfloat16"]["eval"]
        fp32 = entries[f"{name} float32"]["eval"]
        per_round = [m / f for m, f in zip(mixed["round_images_per_s"], fp32["round_images_per_s"])]
        assert abs(mixed["ratio_to_float32"] - statistics.median(per_round)) < 1e-9
        assert entries[f"{name} mixed_bfloat16"]["info"]["parameters"] == entries[f"{name} float32"]["info"][
            "parameters"]
    # The markdown table: a row per implementation and policy, the speed-up column filled for mixed rows.
    table = completed.stdout
    rows = [line for line in table.splitlines() if line.startswith("| plain") or line.startswith("| keras")]
    assert len(rows) == 4 and "eval vs float32" in table
    speedup = entries["torch-baseline mixed_bfloat16"]["eval"]["ratio_to_float32"]
    assert f"{speedup:.2f}x" in rows[1]
    assert "mixed_bfloat16" in rows[3] and "float32" in rows[2]


def test_several_dtype_policies_need_compare():
    completed = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "benchmark.py"), "--dtype-policy", "float32,mixed_bfloat16"],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 2 and "need --compare" in completed.stderr
    completed = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "benchmark.py"), "--compare", "--dtype-policy", "float16"],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 2 and "--dtype-policy" in completed.stderr
