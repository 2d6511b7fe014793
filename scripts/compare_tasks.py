"""Single-task vs multi-task table from a sweep folder (e.g. ``-m experiment=mtl_vs_single``).

Usage: python scripts/compare_tasks.py SWEEP_DIR

Reads every job's ``metrics.json`` and ``.hydra/overrides.yaml``; prints a Markdown table with
one row per task and one column per job in which it was trained (alone or in a mix), holding
the task's primary test metric. Jobs without ``metrics.json`` are listed as unfinished.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mtfsl.summary import read_sweep

PRIMARY = ("f1", "accuracy")  # entity tasks report f1; tagging/classification accuracy


def jobs(sweep: Path) -> list[tuple[str, dict[str, float] | None]]:
    """(the job's task= override, its metrics or None) for every job, in job order."""
    return [
        (next((o.split("=", 1)[1] for o in j.overrides if o.startswith("task=")), "?"), j.metrics)
        for j in read_sweep(sweep)
    ]


def primary(metrics: dict[str, float], task: str) -> tuple[str, float] | None:
    for name in PRIMARY:
        if f"test/{task}/{name}" in metrics:
            return name, metrics[f"test/{task}/{name}"]
    return None


def tested_tasks(metrics: dict[str, float]) -> set[str]:
    return {k.split("/")[1] for k in metrics if k.startswith("test/")}


def table(sweep: Path) -> str:
    all_jobs = jobs(sweep)
    done = [(mix, m) for mix, m in all_jobs if m is not None]
    mixes = [(mix, m) for mix, m in done if len(tested_tasks(m)) > 1]
    lines = [
        "| task (test metric) | alone | " + "".join(f"{mix} | " for mix, _ in mixes),
        "|---" * (2 + len(mixes)) + "|",
    ]
    for task in sorted(set().union(*(tested_tasks(m) for _, m in done))):
        alone = next((m for mix, m in done if mix == task), None)
        scores = [primary(m, task) if m else None for m in [alone, *(m for _, m in mixes)]]
        name = next((s[0] for s in scores if s), "?")
        cells = " | ".join(f"{s[1]:.2f}" if s else "–" for s in scores)
        lines.append(f"| {task} ({name}) | {cells} |")
    unfinished = [mix for mix, m in all_jobs if m is None]
    if unfinished:
        lines.append(f"\nUnfinished jobs (not in the table): {', '.join(unfinished)}")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(table(Path(sys.argv[1])))
