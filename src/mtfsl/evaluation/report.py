"""Write evaluation results of one run: reports and CoNLL-style prediction files."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from mtfsl.config import MetricMode
from mtfsl.evaluation.metrics import (
    entity_report,
    entity_scores,
    flatten,
    label_report,
    label_scores,
    token_report,
)


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


def escape_tsv(text: str) -> str:
    """One TSV field: backslashes, tabs and newlines escaped."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def write_tsv(path: Path, texts: Sequence[str], gold: Sequence[str], pred: Sequence[str]) -> None:
    """``text<TAB>gold<TAB>pred`` per example, in file order (tabs/newlines in text escaped)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as out:
        out.write("text\tgold\tpred\n")
        for text, g, p in zip(texts, gold, pred, strict=True):
            out.write(f"{escape_tsv(text)}\t{g}\t{p}\n")
    os.replace(tmp, path)


def _label_report(
    header: str, heading: str, gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]
) -> str:
    scores = label_scores(gold, pred)
    return (
        f"# {header}\n\n## {heading}\n"
        f"accuracy {scores['accuracy']:.2f}  macro-F1 {scores['macro_f1']:.2f}\n\n"
        f"{label_report(gold, pred, labels)}"
    )


def tag_report(
    split: str,
    task: str,
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    labels: Sequence[str],
    mode: MetricMode,
) -> str:
    """Per-tag report of a plain tagging task (e.g. POS): every token counts."""
    header = f"{split} / {task}: {len(gold)} sentences, {sum(len(s) for s in gold)} tokens"
    return _label_report(
        header, "Token-level (scikit-learn, every token)", flatten(gold), flatten(pred), labels
    )


def classification_report_text(
    split: str,
    task: str,
    gold: Sequence[str],
    pred: Sequence[str],
    labels: Sequence[str],
    mode: MetricMode,
) -> str:
    """Per-class report of a sequence classification task."""
    header = f"{split} / {task}: {len(gold)} examples"
    return _label_report(header, "Per class (scikit-learn)", gold, pred, labels)


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
