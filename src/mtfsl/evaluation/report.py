"""Write evaluation results of one run: reports and CoNLL-style prediction files."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from mtfsl.config import MetricMode
from mtfsl.evaluation.metrics import entity_report, entity_scores, token_report


def atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, data: dict[str, object]) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_predictions(
    path: Path,
    words: Sequence[Sequence[str]],
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
) -> None:
    """``token gold pred`` per line, blank line between sentences, in file order (conlleval)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for ws, gs, ps in zip(words, gold, pred, strict=True):
            for w, g, p in zip(ws, gs, ps, strict=True):
                out.write(f"{w} {g} {p}\n")
            out.write("\n")
    os.replace(tmp, path)


def split_report(
    split: str,
    task: str,
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    labels: Sequence[str],
    mode: MetricMode,
) -> str:
    """Entity-level report, then the token-level table, each clearly titled."""
    scores = entity_scores(gold, pred, mode)
    n_words = sum(len(s) for s in gold)
    return (
        f"# {split} / {task}: {len(gold)} sentences, {n_words} tokens\n\n"
        f"## Entity-level (seqeval, mode={mode.value}; conlleval semantics by default)\n"
        f"precision {scores['precision']:.2f}  recall {scores['recall']:.2f}  "
        f"F1 {scores['f1']:.2f}\n\n"
        f"{entity_report(gold, pred, mode)}\n"
        "## Token-level (scikit-learn, every token, includes O)\n"
        "Not comparable with entity-level F1: the frequent O tag inflates these scores.\n"
        f"token accuracy {scores['accuracy']:.2f}\n\n"
        f"{token_report(gold, pred, labels)}"
    )
