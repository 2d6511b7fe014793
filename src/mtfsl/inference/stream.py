"""Predicting a stream of inputs with a finished run: the inputs (raw lines split into words,
or a file in a reader's format with the task's column settings), read, predicted and written
a chunk at a time so memory stays bounded however large the input is; and a labelled file
scored as the run's evaluation scores a split. ``mtfsl-predict`` parses its arguments into a
``Request`` and calls these."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from omegaconf import OmegaConf

from mtfsl.data.context import windows
from mtfsl.data.readers import get_reader, text_lines
from mtfsl.errors import DataError, MtfslError
from mtfsl.kinds.protocols import Kind

if TYPE_CHECKING:  # torch and transformers load after the arguments are read (fast --help)
    from mtfsl.data.readers.base import Reader
    from mtfsl.inference.run import LoadedRun


@dataclass
class Request:
    """What to predict and where to write it (``mtfsl-predict``'s arguments)."""

    input: str | None = None  # a file; None: standard input (or ``text``)
    text: list[str] | None = None  # texts given on the command line
    format: str = "text"  # text: one input per line; else a reader's format
    out_format: str | None = None  # conll, jsonl or tsv; None: the task kind's
    output: Path | None = None  # None: standard output
    split: str = "punctuation"  # how raw text becomes words: punctuation, whitespace, tokenizer
    chunk_size: int = 4096


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


def whitespace_words(text: str) -> list[tuple[str, tuple[int, int]]]:
    return [(m.group(), m.span()) for m in re.finditer(r"\S+", text)]


# CoNLL-style words: abbreviations with inner periods (U.S.), numbers with separators
# (1,000.5), words with inner hyphens or apostrophes (co-founder, O'Neil), then any other
# non-space character alone, so "Berlin." is "Berlin" "." and "(AP)" is "(" "AP" ")".
_WORD = re.compile(r"(?:[^\W\d_]\.){2,}|\d+(?:[.,]\d+)*|\w+(?:[-'’]\w+)*|[^\w\s]")


def punctuation_words(text: str) -> list[tuple[str, tuple[int, int]]]:
    return [(m.group(), m.span()) for m in _WORD.finditer(text)]


SPLITTERS = {"punctuation": punctuation_words, "whitespace": whitespace_words}


def text_examples(lines: Iterable[str], kind: Kind, split: Callable) -> Iterator[Example]:
    """An example per non-blank line (the kind makes words or a text of it)."""
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        item, spans = kind.raw_input(line, split)
        yield Example(item, line, spans, line=number)


def file_examples(path: Path, fmt: str, run: LoadedRun, task: str) -> Iterator[Example]:
    """The examples of a file in a reader's format (``fmt``), read lazily with the task's
    column settings; gold labels when the file has the task's label column."""
    kind = run.tasks[task].kind
    reader, reader_cfg = reader_for(run, task, fmt)
    columns = run.tasks[task].columns
    label_role = kind.label_role
    for record in reader.iter_records(path, reader_cfg, columns, frozenset({label_role})):
        try:
            item, text, spans = kind.input_of(record.values)
        except DataError as err:
            raise DataError(f"{path}:{record.line}: {err}") from None
        yield Example(item, text, spans, record.values.get(label_role), record.doc, record.line)


def reader_for(run: LoadedRun, task: str, fmt: str) -> tuple[Reader, Any]:
    """The reader of ``fmt`` and its settings: the task's own when the format is the task's,
    else the format's defaults."""
    cfg, reader = run.cfg.task[task], get_reader(fmt, "--format")
    if cfg.reader.format == fmt:
        return reader, cfg.reader
    return reader, OmegaConf.to_object(OmegaConf.structured(reader.schema))


def write_jsonl(
    out: TextIO, kind: Kind, examples: Sequence[Example], pred: list, probs: list | None = None
) -> None:
    """A JSON record per example; with ``probs``, the predicted labels' probabilities."""
    probs = probs or [None] * len(examples)
    for ex, labels, p in zip(examples, pred, probs, strict=True):
        out.write(json.dumps(kind.prediction_record(ex, labels, p), ensure_ascii=False) + "\n")


def stdin_lines() -> Iterator[str]:
    """Standard input's lines, split at \n only (not at a lone \r), as UTF-8."""
    sys.stdin.reconfigure(encoding="utf-8", newline="\n")
    try:
        yield from sys.stdin
    except UnicodeDecodeError as err:
        byte = err.object[err.start]
        raise MtfslError(f"standard input: not valid UTF-8 (byte 0x{byte:02x})") from None


def read_examples(req: Request, run: LoadedRun, task: str) -> Iterator[Example]:
    """The inputs, lazily, in file order."""
    kind = run.tasks[task].kind
    pre = run.tokenizer.backend_tokenizer.pre_tokenizer
    if req.split == "tokenizer" and pre is not None:
        split = pre.pre_tokenize_str
    else:
        split = SPLITTERS.get(req.split, punctuation_words)
    if req.text:
        return text_examples(req.text, kind, split)
    if req.format == "text":
        # one input per line: split at \n (and \r\n) only, never at U+2028, U+0085, ...
        lines = text_lines(req.input, newlines_only=True) if req.input else stdin_lines()
        return text_examples(lines, kind, split)
    if not req.input:
        raise MtfslError(f"--format {req.format} needs an input file")
    return file_examples(Path(req.input), req.format, run, task)


@contextmanager
def output_to(path: Path | None) -> Iterator[TextIO]:
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


def run_prediction(req: Request, run: LoadedRun, task: str) -> None:
    """Read, predict and write a chunk of ``req.chunk_size`` inputs at a time. With
    ``data.context`` each chunk carries its neighbouring sentences as context (CoNLL input
    only: documents), so chunking never changes a prediction."""
    from mtfsl.inference.run import predict
    from mtfsl.utils.memory import release_memory

    kind = run.tasks[task].kind
    fmt = req.out_format or kind.out_format
    if fmt == "conll" and kind.out_format != "conll":
        raise MtfslError(
            f"--out-format conll is for tagging tasks (kind {kind.name}); use tsv or jsonl"
        )
    documents = req.format == "conll" and not req.text  # only CoNLL files have them
    margin = run.cfg.data.context if documents and kind.token_level else 0
    source = Path(req.input or "<text>")
    with output_to(req.output) as out:
        for rows, own in windows(read_examples(req, run, task), req.chunk_size, margin):
            docs = [r.doc for r in rows] if documents else None
            probs: list = []
            pred = predict(
                run,
                task,
                [r.item for r in rows],
                source,
                docs=docs,
                lines=[r.line for r in rows],
                own=own,
                probabilities=probs if fmt == "jsonl" else None,
            )
            if fmt == "jsonl":
                write_jsonl(out, kind, rows[own.start : own.stop], pred, probs)
            else:
                kind.write_rows(out, rows[own.start : own.stop], pred, fmt)
            release_memory()  # keeps the process's footprint flat over a long stream


def score_file(req: Request, run: LoadedRun, task: str) -> dict[str, float]:
    """Read a labelled file as training reads a split (the task's reader keys when the format
    is the task's own, its kind's checks, its label set), predict it, and score and report it
    as the run's evaluation does. Metrics go to stdout as JSON, the report to ``--output``
    (or after the metrics)."""
    from mtfsl.data.readers.base import Records
    from mtfsl.data.splits import check_known
    from mtfsl.inference.run import predict

    if req.format == "text" or not req.input:
        raise MtfslError("--score needs a labelled input file and its --format (conll, csv, ...)")
    cfg, kind = run.cfg.task[task], run.tasks[task].kind
    reader, reader_cfg = reader_for(run, task, req.format)
    path = Path(req.input)
    records: Records = reader.read(path, reader_cfg, run.tasks[task].columns)
    split = kind.to_split(records, cfg)
    check_known(kind, split, run.labels[task])
    docs = [r.doc for r in records.rows] if kind.token_level else None
    pred = predict(run, task, split.inputs, path, docs=docs, lines=split.lines)
    metrics = kind.score(cfg, split.targets, pred, run.cfg.metrics.mode)
    report = kind.report(
        cfg, path.name, task, split.targets, pred, run.labels[task], run.cfg.metrics.mode
    )
    print(json.dumps({f"{path.name}/{task}/{k}": v for k, v in metrics.items()}, indent=2))
    if req.output:
        req.output.write_text(report, encoding="utf-8")
    else:
        print(report)
    return metrics
