"""The decoder results table from ``scripts/results_llm.sh OUT_DIR``'s run folders: per
configuration, the mean and standard deviation of the test metric over its seeds or splits,
each value, and the training time.

Usage: python scripts/results_llm_table.py OUT_DIR
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

METRICS = {"b77": "test/banking77/accuracy", "conll": "test/conll/f1"}


def rows(out: Path) -> list[str]:
    lines = ["| configuration | n | test metric, mean ± std | each | train s (median) |"]
    lines.append("|---|---:|---:|---|---:|")
    for group in sorted(p for p in out.iterdir() if p.is_dir()):
        runs = [json.loads(m.read_text()) for m in sorted(group.glob("*/metrics.json"))]
        key = METRICS.get(group.name.split("_")[0])
        if not runs or key is None:
            continue
        values = [r[key] for r in runs]
        seconds = statistics.median(r["time/train_seconds"] for r in runs)
        each = " ".join(f"{v:.2f}" for v in values)
        mean = f"{statistics.mean(values):.2f}"
        if len(values) > 1:
            mean += f" ± {statistics.stdev(values):.2f}"
        lines.append(f"| {group.name} | {len(values)} | {mean} | {each} | {seconds:.0f} |")
    return lines


if __name__ == "__main__":
    print("\n".join(rows(Path(sys.argv[1]))))
