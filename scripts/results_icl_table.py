"""The in-context learning table from ``scripts/results_icl.sh OUT_DIR``'s run folders: per
task, each method's test metric against K (mean ± std over the draws, n runs), in-context
learning with and without contextual calibration (one run gives both), and the fine-tuning
runs on the same draws. CoNLL also lists the parse failures.

Usage: python scripts/results_icl_table.py OUT_DIR
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

METRIC = {"sst2": "sst2/accuracy", "rte": "rte/accuracy", "b77": "banking77/accuracy"}
METRIC["conll"] = "conll/f1"
# (row name, run-folder prefix, metric prefix) per method
ROWS = [
    ("ICL, FIXED order", "fixed", "uncalibrated_"),
    ("ICL, FIXED order, calibrated", "fixed", ""),
    ("ICL, SIMILAR order", "similar", "uncalibrated_"),
    ("ICL, SIMILAR order, calibrated", "similar", ""),
    ("SmolLM2 LoRA prompt fine-tuning", "lora_prompt", ""),
    ("MiniLM fine-tuning (head)", "minilm", ""),
]
RUN = re.compile(r"^(?P<method>[a-z_]+?)_k(?P<k>\d+)_(?:seed|split)\d+$")


def cell(values: list[float]) -> str:
    if not values:
        return ""
    text = f"{statistics.mean(values):.2f}"
    if len(values) > 1:
        text += f" ± {statistics.stdev(values):.2f}"
    return f"{text} ({len(values)})"


def metric(run: dict, task: str, prefix: str, method: str) -> float | None:
    """The run's test metric: uncalibrated (``prefix``) or calibrated; a run without
    calibration (CoNLL) has only the plain one, which is its uncalibrated score."""
    head, _, last = f"test/{METRIC[task]}".rpartition("/")
    calibrated = f"{head}/uncalibrated_{last}" in run
    if method.startswith(("fixed", "similar")) and not prefix and not calibrated:
        return None
    return run.get(f"{head}/{prefix}{last}" if calibrated else f"{head}/{last}")


def table(out: Path, task: str) -> list[str]:
    runs: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for path in sorted((out / task).glob("*/metrics.json")):
        found = RUN.match(path.parent.name)
        method, k = (found["method"], int(found["k"])) if found else ("zero", 0)
        runs[method, k].append(json.loads(path.read_text()))
    ks = sorted({k for _, k in runs})
    if not ks:
        return []
    lines = [f"| {task}: method | " + " | ".join(f"K={k}" for k in ks) + " |"]
    lines.append("|---|" + "---:|" * len(ks))
    for row, method, prefix in ROWS:
        cells = []
        for k in ks:
            group = runs.get((method, k)) or (runs.get(("zero", 0)) if k == 0 else None) or []
            if k == 0 and not method.startswith(("fixed", "similar")):
                group = []
            if k == 0 and method == "similar":
                group = []  # the same zero-shot run as FIXED
            values = [v for r in group if (v := metric(r, task, prefix, method)) is not None]
            failures = [r[f"test/{task}/parse_failures"] for r in group if task == "conll"]
            extra = f"; parse failures {statistics.mean(failures):.0f}" if failures else ""
            cells.append(cell(values) + extra if values else "")
        if any(cells):
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return lines


if __name__ == "__main__":
    root = Path(sys.argv[1])
    for name in METRIC:
        if (root / name).is_dir() and (lines := table(root, name)):
            print("\n".join(lines) + "\n")
