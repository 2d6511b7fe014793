"""Print the GLUE and few-shot SQuAD tables of docs/results.md from the run folders that
scripts/results_glue_squad.sh writes: mean +- sample std over the seeds that finished (n),
mean training time, and the commit(s) the runs recorded.

    python scripts/results_table.py OUT_DIR
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

GLUE = [  # (task, [(metric, shown as)])
    ("rte", [("accuracy", "acc")]),
    ("mrpc", [("f1", "F1"), ("accuracy", "acc")]),
    ("stsb", [("pearson", "Pearson"), ("spearman", "Spearman")]),
    ("sst2", [("accuracy", "acc")]),
    ("cola", [("mcc", "MCC")]),
]
SQUAD = [("k16", "16"), ("k64", "64"), ("all", "all 269")]


def runs(folder: Path) -> list[dict]:
    out = []
    for seed in sorted(folder.glob("seed*")):
        metrics = seed / "metrics.json"
        if metrics.is_file():
            record = json.loads(metrics.read_text())
            provenance = seed / "provenance.json"
            if provenance.is_file():
                commit = json.loads(provenance.read_text()).get("git_commit") or "?"
                record["_commit"] = commit[:7]
            out.append(record)
    return out


def cell(values: list[float]) -> str:
    if not values:
        return "–"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {std:.2f}"


def seeds(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def train_seconds(found: list[dict], empty: str = "") -> str:
    """The runs' mean training time in seconds, or ``empty`` when none finished."""
    secs = [r["time/train_seconds"] for r in found]
    return f"{statistics.mean(secs):.0f}" if secs else empty


def commits(found: list[dict]) -> str:
    return ",".join(sorted({r.get("_commit", "?") for r in found}))


def in_mix(found: list[dict], key: str) -> str:
    values = [r[key] for r in found if key in r]
    return f"{cell(values)} | {len(values)}" if values else "– |"


def glue_table(out: Path) -> str:
    mix, mix5 = runs(out / "glue" / "mix"), runs(out / "glue" / "mix5")
    rows = [
        "| task | metric (dev) | alone | n | per seed | train s | in the GLUE mix | n "
        "| in the mix with CoLA | n |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    found = mix + mix5
    for task, metrics in GLUE:
        alone = runs(out / "glue" / task)
        found += alone
        for metric, shown in metrics:
            key = f"test/{task}/{metric}"
            values = [r[key] for r in alone]
            rows.append(
                f"| {task} | {shown} | {cell(values)} | {len(alone)} | {seeds(values)} | "
                f"{train_seconds(alone)} | {in_mix(mix, key)} | {in_mix(mix5, key)} |"
            )
    return "\n".join(rows) + f"\n\ncommits: {commits(found)}\n"


CROSS_KIND = [
    ("conll", "f1", "entity F1"),
    ("rte", "accuracy", "acc"),
    ("stsb", "spearman", "Spearman"),
]


def cross_kind_table(out: Path) -> str:
    """The CoNLL NER + RTE + STS-B mix beside each task trained alone (CoNLL alone is the
    3-epoch reproduction in docs/results.md, so only the mix's own column is computed)."""
    mix = runs(out / "glue" / "conll_glue")
    rows = ["| task | metric (test split) | in the mix | n |", "|---|---|---|---|"]
    for task, metric, shown in CROSS_KIND:
        values = [r[f"test/{task}/{metric}"] for r in mix if f"test/{task}/{metric}" in r]
        rows.append(f"| {task} | {shown} | {cell(values)} | {len(values)} |")
    secs = train_seconds(mix, "–")
    return "\n".join(rows) + f"\n\ntrain s: {secs}; commits: {commits(mix)}\n"


def squad_table(out: Path) -> str:
    rows = [
        "| training questions | exact match | F1 | n | F1 per seed | train s |",
        "|---|---|---|---|---|---|",
    ]
    found = []
    for folder, shown in SQUAD:
        done = runs(out / "squad" / folder)
        found += done
        em = [r["test/squad/exact_match"] for r in done]
        f1 = [r["test/squad/f1"] for r in done]
        rows.append(
            f"| {shown} | {cell(em)} | {cell(f1)} | {len(done)} | {seeds(f1)} | "
            f"{train_seconds(done)} |"
        )
    return "\n".join(rows) + f"\n\ncommits: {commits(found)}\n"


def main() -> None:
    out = Path(sys.argv[1])
    print("## GLUE (dev split)\n")
    print(glue_table(out))
    print("## Across kinds: CoNLL NER + RTE + STS-B\n")
    print(cross_kind_table(out))
    print("## Few-shot SQuAD v1.1 (810 Super Bowl 50 questions)\n")
    print(squad_table(out))


if __name__ == "__main__":
    main()
