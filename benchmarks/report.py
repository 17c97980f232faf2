"""Turn a pytest-benchmark JSON file into the Markdown tables of docs/performance.md.

    python benchmarks/report.py benchmarks/results/results-YYYY-MM-DD.json

For every group: each implementation's median, its ratio to numbamlp's (how many times slower
the other is; > 1 means numbamlp is faster), and the extra_info figures that matter.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

EXTRA = {
    "seconds_per_epoch": ("s/epoch", "{:.4f}"),
    "gflops": ("GFLOP/s", "{:.1f}"),
    "fraction_of_flop_limit": ("of FLOP limit", "{:.1%}"),
    "fraction_of_peak": ("of peak", "{:.1%}"),
    "test_accuracy": ("test accuracy", "{:.4f}"),
    "seconds_per_step": ("s/step", "{:.2e}"),
    "microseconds_per_sample": ("µs/sample", "{:.2f}"),
    "microseconds_per_step": ("µs/step", "{:.1f}"),
    "ready_seconds_median": ("ready (s)", "{:.2f}"),
    "compile_seconds": ("compile (s)", "{:.1f}"),
    "ready_seconds": ("ready (s)", "{:.2f}"),
    "peak_rss_mib": ("peak RSS MiB", "{:.0f}"),
    "imports_rss_mib": ("imports MiB", "{:.0f}"),
    "dataset_mib": ("data MiB", "{:.0f}"),
    "overhead_mib": ("peak − imports − data MiB", "{:.0f}"),
}


#: Where the recorded runs live: benchmarks/results/results-*.json.
RESULTS = Path(__file__).resolve().parent / "results"


def newest_full_run(directory: Path = RESULTS) -> tuple[Path, dict]:
    """The newest run of the whole suite among the results-*.json in ``directory``, or in its
    ``results/`` folder when given benchmarks/ itself (by the time each records), as (path, run);
    the partial runs there lack the scaling group."""
    if (directory / "results").is_dir():
        directory = directory / "results"
    found = []
    for path in directory.glob("results-*.json"):
        run = json.loads(path.read_text())
        if any(b["name"].startswith("test_cost_per_step_vs_batch[") for b in run["benchmarks"]):
            found.append((run["datetime"], path, run))
    _, path, run = max(found, key=lambda item: item[0])
    return path, run


def _impl(name: str) -> str:
    """The parametrisation of a benchmark, e.g. test_x[numpy-128] → numpy-128."""
    return name[name.index("[") + 1 : -1] if "[" in name else name


def _is_numbamlp(impl: str) -> bool:
    """numbamlp's default (fused) engine at full threads: what each ratio is taken against."""
    tokens = impl.split("-")
    return "numbamlp" in tokens and "kernels" not in tokens and "1" not in tokens


def render(data: dict) -> str:
    groups: dict[str, list] = defaultdict(list)
    for bench in data["benchmarks"]:
        groups[bench["group"]].append(bench)
    lines = []
    machine = data.get("machine_info", {})
    cpu = machine.get("cpu", {})
    lines.append(
        f"Run {data.get('datetime', '?')[:16]} on {cpu.get('brand_raw', '?')}, "
        f"{cpu.get('count', '?')} cores, Python {machine.get('python_version', '?')}."
    )
    for group in sorted(groups):
        benches = sorted(groups[group], key=lambda b: b["stats"]["median"])
        base = next((b for b in benches if _is_numbamlp(_impl(b["name"]))), None)
        keys = [k for k in EXTRA if any(k in b["extra_info"] for b in benches)]
        lines.append(f"\n**{group}**\n")
        header = ["implementation", "median (s)", "× numbamlp's time"]
        header += [EXTRA[k][0] for k in keys]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + " --- |" * len(header))
        for b in benches:
            median = b["stats"]["median"]
            ratio = f"{median / base['stats']['median']:.2f}" if base else "—"
            cells = [_impl(b["name"]), f"{median:.4g}", ratio]
            for k in keys:
                value = b["extra_info"].get(k)
                cells.append(EXTRA[k][1].format(value) if value is not None else "")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    merged: dict = {"benchmarks": []}
    for path in sys.argv[1:]:  # later files replace earlier runs of the same benchmark
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        names = {b["fullname"] for b in data["benchmarks"]}
        merged["benchmarks"] = [b for b in merged["benchmarks"] if b["fullname"] not in names]
        merged["benchmarks"] += data["benchmarks"]
        merged.update({k: v for k, v in data.items() if k != "benchmarks"})
    print(render(merged))
