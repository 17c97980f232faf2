"""The fused engine's step on more threads than this machine has, modelled from a run of
``test_phases.py`` (issue 20, point 5: nothing has run on more than 2 cores).

    python benchmarks/scaling_model.py benchmarks/results/results-….json

The model, from the measured region times on 1 and 2 threads of each workload:

* region 1 (``forward_backward``) is parallel over blocks of 64 samples: on p threads the
  slowest thread runs ⌈blocks/p⌉ of them, so its time is region1(1) · ⌈blocks/p⌉ / blocks;
* region 2 (``gradient_update``) is parallel over ranges of rows of the weights, cut on whole
  tiles of 4 rows: region2(1) / min(p, ⌈rows/4⌉);
* each region also loses what it lost on 2 threads against half its 1-thread time (opening
  and closing the region, waiting for the slower thread, cache lines from the other core; 0
  where 2 threads did better than half), assumed to grow with log₂ p, as a barrier's tree does;
* what lies between the regions (the minibatch loss, the step's coefficients, each region's
  effect on the other's caches) is the whole step less both regions on 2 threads, the same for
  any p ≥ 2;
* memory bandwidth is assumed to grow with the cores (each core fetches its own rows of X):
  a socket that saturates would flatten the curve further.

The measured points (p = 1, 2) are printed beside the model's, which is the measured step at
p = 1 and reproduces p = 2 by construction (where 2 threads lost something in each region).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

SAMPLE_BLOCK = 64  # engines/fused/layout.py, MAX_SAMPLE_BLOCK
ROW_TILE = 4  # engines/fused/layout.py

#: workload name (as test_phases.py's groups spell it) → (batch, rows of W^1..W^L)
WORKLOADS = {"784-32-10, batch 128": (128, 32 + 10), "784-2048-10, batch 1024": (1024, 2048 + 10)}


def measured(run: dict, workload: str) -> dict[tuple[str, int], float]:
    """(part, threads) → µs per step, from the run's ``test_region`` benchmarks."""
    out = {}
    for bench in run["benchmarks"]:
        group = bench.get("group") or ""
        if not group.startswith("phases: ") or workload not in group:
            continue
        part = group[len("phases: ") :].split(",")[0]
        out[(part, bench["extra_info"]["threads"])] = bench["extra_info"]["microseconds_per_step"]
    return out


def modelled_step(times: dict[tuple[str, int], float], batch: int, rows: int, p: int) -> float:
    """µs per step on p threads (the module docstring's model)."""
    r1, r2 = times[("region 1", 1)], times[("region 2", 1)]
    if p == 1:
        return times[("whole step", 1)]
    blocks = math.ceil(batch / SAMPLE_BLOCK)
    items = math.ceil(rows / ROW_TILE)
    # what 2 threads lost (never less than nothing: a run can beat half its 1-thread time)
    lost1 = max(0.0, times[("region 1", 2)] - r1 / 2)
    lost2 = max(0.0, times[("region 2", 2)] - r2 / 2)
    between = times[("whole step", 2)] - times[("region 1", 2)] - times[("region 2", 2)]
    region1 = r1 * math.ceil(blocks / p) / blocks + lost1 * math.log2(p)
    region2 = r2 / min(p, items) + lost2 * math.log2(p)
    return region1 + region2 + between


def report(path: Path) -> str:
    run = json.loads(path.read_text())
    lines = [
        f"Modelled from {path.name} ({run['machine_info'].get('cpu', {}).get('brand_raw', '?')})."
    ]
    for workload, (batch, rows) in WORKLOADS.items():
        times = measured(run, workload)
        if len(times) < 6:
            continue
        lines += ["", f"**{workload}** (µs per step; speed-up against 1 thread)", ""]
        lines += [
            "| threads | measured | modelled | modelled speed-up |",
            "| --- | --- | --- | --- |",
        ]
        one = modelled_step(times, batch, rows, 1)
        for p in (1, 2, 4, 8, 16):
            step = modelled_step(times, batch, rows, p)
            seen = times.get(("whole step", p))
            shown = f"{seen:.1f}" if seen is not None else "—"
            lines.append(f"| {p} | {shown} | {step:.1f} | {one / step:.2f}× |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(Path(sys.argv[1])))
