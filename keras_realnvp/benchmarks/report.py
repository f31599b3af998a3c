"""The benchmark's text: one run's summary, the `--compare` markdown table, the memory table.

Example:

>>> print(format_matmul({"cpu": "X", "cores": 2, "cpu_flags": "", "device": "cpu", "float32": 100.0,
...     "bfloat16": 50.0, "bfloat16_over_float32": 0.5, "size": 1024}))
X (2 cores, flags: no avx512/amx), cpu: float32 100.0 GFLOP/s, bfloat16 50.0 GFLOP/s (0.50x), 1024x1024 matmul
"""

from keras_realnvp.benchmarks.compare import MEMORY_BATCH_SIZE
from keras_realnvp.benchmarks.measure import KINDS


def format_matmul(result: dict) -> str:
    """One line: the float32 and bfloat16 matrix-multiply speeds of `machine.matmul_throughput`; see above."""
    return (f"{result['cpu']} ({result['cores']} cores, flags: {result['cpu_flags'] or 'no avx512/amx'}), "
            f"{result['device']}: float32 {result['float32']:.1f} GFLOP/s, bfloat16 {result['bfloat16']:.1f} "
            f"GFLOP/s ({result['bfloat16_over_float32']:.2f}x), {result['size']}x{result['size']} matmul")


def _preset(record: dict) -> str:
    """The preset's name, and the architecture overrides of the run if it had any.

    Example:

    >>> _preset({"preset": "cifar10", "architecture_overrides": {"num_scales": 1, "num_blocks": 2}})
    'cifar10 (num_scales 1, num_blocks 2)'
    """
    overrides = record.get("architecture_overrides") or {}
    if not overrides:
        return record["preset"]
    return f"{record['preset']} ({', '.join(f'{key} {value}' for key, value in overrides.items())})"


def format_single(record: dict) -> str:
    """A run's record (`measure.run_single`) as a few lines of text.

    Example:

    >>> record = {"implementation": "keras", "backend": "jax", "framework": "jax 0.6", "device": "cpu",
    ...     "preset": "cifar10", "batch_size": 16, "dtype_policy": "float32", "parameters": 1000,
    ...     "forward_gflop_per_image": 12.9, "memory": {"step_peak_mb": 300.0, "where": "XLA"}}
    >>> print(format_single(record))
    keras on jax (jax 0.6, cpu), preset cifar10, batch 16, float32, 1,000 parameters, 12.90 GFLOP/image forward
      memory: training step peak 300 MB (XLA)
    """
    lines = [
        f"{record['implementation']} on {record['backend']} ({record.get('framework', '')}, {record['device']}), "
        f"preset {_preset(record)}, batch {record['batch_size']}, {record['dtype_policy']}, "
        f"{record['parameters']:,} parameters, {record['forward_gflop_per_image']:.2f} GFLOP/image forward",
    ]
    for kind in KINDS:
        if kind in record:
            s = record[kind]
            lines.append(
                f"  {kind:6s} {s['images_per_s']:8.2f} images/s  {s['gflop_per_s']:6.1f} GFLOP/s  "
                f"step {s['step_s'] * 1e3:8.1f} ms  compile {s['compile_s']:6.1f} s"
            )
    for q in record.get("quality", []):
        lines.append(
            f"  {q['dtype_policy']}, seed {q['seed']}: after {q['steps']} training steps held-out bits/dim "
            f"{q['held_out_bits_per_dim_after']:.4f} (before {q['held_out_bits_per_dim_before']:.4f}; "
            f"{q['test_images']} test patches), train bits/dim of the last 10 steps "
            f"{q['train_bits_per_dim_last_10']:.4f}, {q['seconds']:.0f} s"
        )
    summary = record.get("quality_summary", {})
    for policy, entry in summary.items():
        if policy != "comparison" and len(entry["seeds"]) > 1:
            lines.append(f"  {policy} over seeds {entry['seeds']}: held-out bits/dim mean {entry['mean']:.4f}, "
                         f"min {entry['min']:.4f}, max {entry['max']:.4f} (spread {entry['spread']:.4f})")
    for policy, c in summary.get("comparison", {}).items():
        verdict = "within" if c["within_float32_spread"] else "outside"
        lines.append(f"  {policy} - float32 mean: {c['difference_of_means']:+.4f} bits/dim, {verdict} float32's "
                     f"spread of {c['float32_spread']:.4f}")
    if "memory" in record:
        m = record["memory"]
        lines.append(f"  memory: training step peak {m['step_peak_mb']:.0f} MB ({m['where']})")
    return "\n".join(lines)


def _label(entry: dict, several_policies: bool) -> str:
    name, info = entry["implementation"], entry["info"]
    label = "plain PyTorch baseline" if name == "torch-baseline" else f"keras_realnvp, {name}"
    if info.get("jit_compile") is not None and name != "torch-baseline":
        label += f" (jit_compile={info['jit_compile']})"
    return label + (f", {entry['dtype_policy']}" if several_policies else "")


def format_compare(result: dict) -> str:
    """The `--compare` record (`compare.compare`) as a caption and a markdown table (and the memory table).

    One row per implementation (and dtype policy): images/s (GFLOP/s) and the ratio to the
    baseline [min-max over rounds] per measured kind, the speed-up over float32 where
    several policies ran, and the training step's compile time.
    """
    kinds = [k for k in KINDS if k in next(iter(result["implementations"].values()))]
    m = result["machine"]
    out = [
        f"Preset {_preset(result)}, batch {result['batch_size']}, {result['dtype_policy']}; "
        f"{m['cpu']} ({m['cores']} cores, {m['cpu_flags']}); medians of {result['rounds']} rounds "
        f"(x {result['steps_per_round']} training steps, x {result['eval_batches_per_round']} evaluation and "
        f"sampling batches); ratios within each round against the baseline (under the same dtype policy), "
        f"then their median; "
        f"load average during the rounds {min(result['load_average']):.1f}-{max(result['load_average']):.1f}.",
        "",
    ]
    entries = list(result["implementations"].values())
    devices = sorted({e["info"].get("device_name") for e in entries} - {None})
    if devices:
        out[0] = out[0].replace("; medians", f"; {', '.join(devices)}; medians", 1)
    header, rule = "| implementation |", "| --- |"
    for kind in kinds:
        header += f" {kind} images/s (GFLOP/s) | {kind} ratio [min-max] |"
        rule += " ---: | ---: |"
    speedups = [k for k in kinds if any("ratio_to_float32" in e.get(k, {}) for e in entries)]
    for kind in speedups:
        header += f" {kind} vs float32 [min-max] |"
        rule += " ---: |"
    out += [header + " train compile s |", rule + " ---: |"]
    several = "," in result["dtype_policy"]
    for entry in entries:
        row = f"| {_label(entry, several)} |"
        for kind in kinds:
            s, ratios = entry[kind], entry[kind]["round_ratios"]
            row += (f" {s['images_per_s']:.2f} ({s['gflop_per_s']:.0f}) | {s['ratio_to_baseline']:.2f}x "
                    f"[{min(ratios):.2f}-{max(ratios):.2f}] |")
        for kind in speedups:
            s = entry[kind]
            if "ratio_to_float32" in s:
                r = s["round_ratios_to_float32"]
                row += f" {s['ratio_to_float32']:.2f}x [{min(r):.2f}-{max(r):.2f}] |"
            else:
                row += " |"
        row += f" {entry['train']['compile_s']:.0f} |" if "train" in entry else " |"
        out.append(row)
    if "memory" in result:
        out += ["", format_memory(result, list(result["implementations"]))]
    return "\n".join(out)


def format_memory(result: dict, names) -> str:
    """The memory table of `compare.compare_memory`'s `result["memory"]`: MB per preset and implementation.

    Example:

    >>> result = {"machine": {"cpu": "X", "cores": 2},
    ...     "memory": {"cifar10": {"torch": {"step_peak_mb": 3769.2, "where": "resident"}, "jax": {"error": []}}}}
    >>> print(format_memory(result, ["torch", "jax"]).splitlines()[-4])
    | cifar10 | 3769 | error |
    """
    m = result["machine"]
    title = (f"Memory of one training step at batch {MEMORY_BATCH_SIZE} (MB), beyond what is resident before it; "
             f"{m['cpu']} ({m['cores']} cores):")
    out = [title, "", "| preset | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for preset, row in result["memory"].items():
        cells = [f"{row[n]['step_peak_mb']:.0f}" if "step_peak_mb" in row.get(n, {}) else "error" for n in names]
        out.append(f"| {preset} | " + " | ".join(cells) + " |")
    notes = {}
    for row in result["memory"].values():
        for name, cell in row.items():
            if "where" in cell:
                notes.setdefault(name, cell["where"])
    out += ["", "Measured as:", *[f"- {name}: {where}" for name, where in notes.items()]]
    return "\n".join(out)
