"""``mtfsl-predict RUN_DIR``: tag or classify new text with a finished run, offline.

Inputs: raw text (one sentence or text per line; words split on whitespace or by the
model's own pre-tokenizer), a CoNLL file, or a CSV file. Outputs: CoNLL, JSONL (entities with
character offsets) or TSV. Input is read, predicted and written a chunk at a time, so memory
stays bounded however large the input is.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import datasets
from seqeval.metrics.sequence_labeling import get_entities

from mtfsl.config import HeadKind
from mtfsl.data.context import windows
from mtfsl.data.readers import check_column, csv_header, iter_conll, iter_csv, text_lines
from mtfsl.errors import MtfslError
from mtfsl.evaluation.report import escape_tsv
from mtfsl.inference import LoadedRun, load_run, predict
from mtfsl.utils.memory import release_memory


@dataclass
class Example:
    """One input to predict: a word list (token tasks) or a text; the original text and each
    word's character span where known; gold labels when the file has them; the CoNLL
    ``-DOCSTART-`` block it belongs to (for ``data.context``); its line in the input."""

    item: Any
    text: str
    spans: list[tuple[int, int]] = field(default_factory=list)
    gold: Any = None
    doc: int | None = None
    line: int = 0


def _whitespace(text: str) -> list[tuple[str, tuple[int, int]]]:
    return [(m.group(), m.span()) for m in re.finditer(r"\S+", text)]


def text_examples(lines: Iterable[str], token_level: bool, split: Callable) -> Iterator[Example]:
    """An example per non-blank line."""
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if not token_level:
            yield Example(line, line, line=number)
            continue
        pieces = split(line)
        yield Example([w for w, _ in pieces], line, [s for _, s in pieces], line=number)


def _joined(words: list[str]) -> tuple[str, list[tuple[int, int]]]:
    spans, start = [], 0
    for w in words:
        spans.append((start, start + len(w)))
        start += len(w) + 1
    return " ".join(words), spans


def conll_examples(path: Path, run: LoadedRun, task: str) -> Iterator[Example]:
    """A sentence at a time; gold tags when the file has the task's label column."""
    cfg = run.cfg.task[task]
    for i, sentence in enumerate(iter_conll(path, cfg.doc_marker)):
        if i == 0:
            check_column(path, [sentence], cfg.token_column, "token")
        width = len(sentence.fields[0])
        words = sentence.column(cfg.token_column)
        text, spans = _joined(words)
        labelled = width > 1 and -width <= cfg.label_column < width
        gold = sentence.column(cfg.label_column) if labelled else None
        yield Example(words, text, spans, gold, sentence.doc, sentence.line)


def csv_examples(path: Path, run: LoadedRun, task: str) -> Iterator[Example]:
    """A record at a time; gold labels when the header has the task's label field."""
    cfg = run.cfg.task[task]
    labelled = cfg.label_field in csv_header(path)
    for record in iter_csv(path, cfg.text_field, cfg.label_field if labelled else None):
        gold = record.label if labelled else None
        yield Example(record.text, record.text, gold=gold, line=record.line)


def write_conll(out: TextIO, examples: Sequence[Example], pred: list) -> None:
    for ex, tags in zip(examples, pred, strict=True):
        for j, (w, t) in enumerate(zip(ex.item, tags, strict=True)):
            out.write(f"{w} {ex.gold[j]} {t}\n" if ex.gold else f"{w} {t}\n")
        out.write("\n")


def write_jsonl(out: TextIO, examples: Sequence[Example], pred: list) -> None:
    for ex, labels in zip(examples, pred, strict=True):
        if not isinstance(labels, list):
            out.write(json.dumps({"text": ex.text, "label": labels}, ensure_ascii=False) + "\n")
            continue
        entities = [
            {
                "type": kind,
                "start": ex.spans[a][0],
                "end": ex.spans[b][1],
                "text": ex.text[ex.spans[a][0] : ex.spans[b][1]],
            }
            for kind, a, b in get_entities(labels)
        ]
        record = {"text": ex.text, "words": ex.item, "tags": labels, "entities": entities}
        out.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_tsv(out: TextIO, examples: Sequence[Example], pred: list) -> None:
    for ex, labels in zip(examples, pred, strict=True):
        if isinstance(labels, list):
            out.writelines(f"{w}\t{t}\n" for w, t in zip(ex.item, labels, strict=True))
            out.write("\n")
        else:
            out.write(f"{escape_tsv(ex.item)}\t{labels}\n")


WRITERS = {"conll": write_conll, "jsonl": write_jsonl, "tsv": write_tsv}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mtfsl-predict", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="a finished mtfsl-train run folder")
    p.add_argument("input", nargs="?", help="input file (default: standard input)")
    p.add_argument("--text", action="append", help="text to predict (repeatable)")
    p.add_argument("--format", choices=["text", "conll", "csv"], default="text")
    p.add_argument("--out-format", choices=sorted(WRITERS), help="default: conll / tsv")
    p.add_argument("--output", type=Path, help="output file (default: standard output)")
    p.add_argument(
        "--split",
        choices=["whitespace", "tokenizer"],
        default="whitespace",
        help="how raw text is split into words for token tasks",
    )
    p.add_argument("--task", help="which task of a multi-task run")
    p.add_argument(
        "--chunk-size",
        type=int,
        default=4096,
        help="inputs read, predicted and written at a time (bounds memory)",
    )
    return p


def read_examples(args: argparse.Namespace, run: LoadedRun, task: str) -> Iterator[Example]:
    """The inputs, lazily, in file order."""
    token_level = run.cfg.task[task].head is HeadKind.TOKEN_CLASSIFICATION
    pre = run.tokenizer.backend_tokenizer.pre_tokenizer
    split = _whitespace if args.split == "whitespace" or pre is None else pre.pre_tokenize_str
    if args.text:
        return text_examples(args.text, token_level, split)
    if args.format == "text":
        lines = text_lines(args.input) if args.input else sys.stdin
        return text_examples(lines, token_level, split)
    if not args.input:
        raise MtfslError(f"--format {args.format} needs an input file")
    reader = conll_examples if args.format == "conll" else csv_examples
    return reader(Path(args.input), run, task)


@contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    """Standard output, or ``path`` written through a temporary file renamed at the end (an
    error half way leaves no half-written file)."""
    if path is None:
        yield sys.stdout
        return
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            yield handle
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def run_prediction(args: argparse.Namespace, run: LoadedRun, task: str) -> None:
    """Read, predict and write a chunk of ``args.chunk_size`` inputs at a time. With
    ``data.context`` each chunk carries its neighbouring sentences as context (CoNLL input
    only: documents), so chunking never changes a prediction."""
    token_level = run.cfg.task[task].head is HeadKind.TOKEN_CLASSIFICATION
    fmt = args.out_format or ("conll" if token_level else "tsv")
    if fmt == "conll" and not token_level:
        raise MtfslError("--out-format conll is for token tasks; use tsv or jsonl")
    documents = args.format == "conll" and not args.text  # only CoNLL files have them
    margin = run.cfg.data.context if documents and token_level else 0
    source = Path(args.input or "<text>")
    with _output(args.output) as out:
        for rows, own in windows(read_examples(args, run, task), args.chunk_size, margin):
            docs = [r.doc for r in rows] if documents else None
            pred = predict(
                run,
                task,
                [r.item for r in rows],
                source,
                docs=docs,
                lines=[r.line for r in rows],
                own=own,
            )
            WRITERS[fmt](out, rows[own.start : own.stop], pred)
            release_memory()  # keeps the process's footprint flat over a long stream


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.chunk_size < 1:
        sys.exit(f"mtfsl-predict: error: --chunk-size={args.chunk_size}: expected >= 1")
    datasets.disable_progress_bars()  # keep standard error for errors
    try:
        run = load_run(args.run_dir)
        run_prediction(args, run, run.task(args.task))
    except (MtfslError, OSError) as err:
        sys.exit(f"mtfsl-predict: error: {err}")


if __name__ == "__main__":
    main()
