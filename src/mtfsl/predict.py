"""``mtfsl-predict RUN_DIR``: tag or classify new text with a finished run, offline.

Inputs: raw text (one sentence or text per line; words split at spaces and punctuation, at
spaces only, or by the model's own pre-tokenizer), or a file in a reader's format (conll,
csv, tsv, jsonl) with the task's column settings. Outputs: CoNLL, JSONL (entities with
character offsets) or TSV. Input is read, predicted and written a chunk at a time, so memory
stays bounded however large the input is. ``--score`` scores a labelled file instead.
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
from typing import TYPE_CHECKING, Any, TextIO

from omegaconf import OmegaConf

from mtfsl.data.context import windows
from mtfsl.data.readers import READERS, get_reader, text_lines
from mtfsl.errors import DataError, MtfslError
from mtfsl.kinds.base import TaskKind

if TYPE_CHECKING:  # torch and transformers load after the arguments are read (fast --help)
    from mtfsl.inference.run import LoadedRun


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


# CoNLL-style words: abbreviations with inner periods (U.S.), numbers with separators
# (1,000.5), words with inner hyphens or apostrophes (co-founder, O'Neil), then any other
# non-space character alone, so "Berlin." is "Berlin" "." and "(AP)" is "(" "AP" ")".
_WORD = re.compile(r"(?:[^\W\d_]\.){2,}|\d+(?:[.,]\d+)*|\w+(?:[-'’]\w+)*|[^\w\s]")


def _punctuation(text: str) -> list[tuple[str, tuple[int, int]]]:
    return [(m.group(), m.span()) for m in _WORD.finditer(text)]


SPLITTERS = {"punctuation": _punctuation, "whitespace": _whitespace}


def text_examples(lines: Iterable[str], kind: TaskKind, split: Callable) -> Iterator[Example]:
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
    cfg, kind = run.cfg.task[task], run.tasks[task].kind
    reader = get_reader(fmt, "--format")
    reader_cfg = (
        cfg.reader
        if cfg.reader.format == fmt
        else OmegaConf.to_object(OmegaConf.structured(reader.schema))
    )
    columns = kind.columns(f"task.{task}", cfg)
    label_role = kind.label_role
    for record in reader.iter_records(path, reader_cfg, columns, frozenset({label_role})):
        try:
            item, text, spans = kind.input_of(record.values)
        except DataError as err:
            raise DataError(f"{path}:{record.line}: {err}") from None
        yield Example(item, text, spans, record.values.get(label_role), record.doc, record.line)


def write_jsonl(
    out: TextIO, kind: TaskKind, examples: Sequence[Example], pred: list, probs: list | None = None
) -> None:
    """A JSON record per example; with ``probs``, the predicted labels' probabilities."""
    probs = probs or [None] * len(examples)
    for ex, labels, p in zip(examples, pred, probs, strict=True):
        out.write(json.dumps(kind.prediction_record(ex, labels, p), ensure_ascii=False) + "\n")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mtfsl-predict", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="a finished mtfsl-train run folder")
    p.add_argument("input", nargs="?", help="input file (default: standard input)")
    p.add_argument("--text", action="append", help="text to predict (repeatable)")
    p.add_argument(
        "--format",
        choices=["text", *sorted(r for r in READERS if r != "datasets")],
        default="text",
        help="text: one input per line; otherwise a reader, with the task's column settings",
    )
    p.add_argument(
        "--out-format", choices=["conll", "jsonl", "tsv"], help="default: the task kind's"
    )
    p.add_argument("--output", type=Path, help="output file (default: standard output)")
    p.add_argument(
        "--split",
        choices=["punctuation", "whitespace", "tokenizer"],
        default="punctuation",
        help="how raw text is split into words for token tasks: punctuation marks are words "
        "of their own (as in CoNLL; default), whitespace only, or the model's pre-tokenizer",
    )
    p.add_argument(
        "--score",
        action="store_true",
        help="score a labelled file (--format, with the task's columns) with the trained "
        "model: print its metrics as JSON and write the report to --output (or stdout)",
    )
    p.add_argument("--task", help="which task of a multi-task run")
    p.add_argument(
        "--backend",
        choices=["torch", "onnx", "onnx-int8"],
        default="torch",
        help="what runs the model: PyTorch, or the graph of mtfsl-export --format onnx "
        "(fp32, or int8 when exported with --int8); same windows, batches and outputs",
    )
    p.add_argument(
        "--onnx-dir", type=Path, help="the ONNX export to use (default RUN_DIR/onnx/TASK)"
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=4096,
        help="inputs read, predicted and written at a time (bounds memory)",
    )
    return p


def stdin_lines() -> Iterator[str]:
    """Standard input's lines, split at \n only (not at a lone \r), as UTF-8."""
    sys.stdin.reconfigure(encoding="utf-8", newline="\n")
    try:
        yield from sys.stdin
    except UnicodeDecodeError as err:
        byte = err.object[err.start]
        raise MtfslError(f"standard input: not valid UTF-8 (byte 0x{byte:02x})") from None


def read_examples(args: argparse.Namespace, run: LoadedRun, task: str) -> Iterator[Example]:
    """The inputs, lazily, in file order."""
    kind = run.tasks[task].kind
    pre = run.tokenizer.backend_tokenizer.pre_tokenizer
    if args.split == "tokenizer" and pre is not None:
        split = pre.pre_tokenize_str
    else:
        split = SPLITTERS.get(args.split, _punctuation)
    if args.text:
        return text_examples(args.text, kind, split)
    if args.format == "text":
        # one input per line: split at \n (and \r\n) only, never at U+2028, U+0085, ...
        lines = text_lines(args.input, newlines_only=True) if args.input else stdin_lines()
        return text_examples(lines, kind, split)
    if not args.input:
        raise MtfslError(f"--format {args.format} needs an input file")
    return file_examples(Path(args.input), args.format, run, task)


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
    from mtfsl.inference.run import predict
    from mtfsl.utils.memory import release_memory

    kind = run.tasks[task].kind
    fmt = args.out_format or kind.out_format
    if fmt == "conll" and kind.out_format != "conll":
        raise MtfslError(
            f"--out-format conll is for tagging tasks (kind {kind.name}); use tsv or jsonl"
        )
    documents = args.format == "conll" and not args.text  # only CoNLL files have them
    margin = run.cfg.data.context if documents and kind.token_level else 0
    source = Path(args.input or "<text>")
    with _output(args.output) as out:
        for rows, own in windows(read_examples(args, run, task), args.chunk_size, margin):
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


def score_file(args: argparse.Namespace, run: LoadedRun, task: str) -> dict[str, float]:
    """Read a labelled file as training reads a split (the task's reader keys when the format
    is the task's own, its kind's checks, its label set), predict it, and score and report it
    as the run's evaluation does. Metrics go to stdout as JSON, the report to ``--output``
    (or after the metrics)."""
    from mtfsl.data.readers.base import Records
    from mtfsl.data.splits import check_known
    from mtfsl.inference.run import predict

    if args.format == "text" or not args.input:
        raise MtfslError("--score needs a labelled input file and its --format (conll, csv, ...)")
    cfg = run.cfg.task[task]
    kind, reader = run.tasks[task].kind, get_reader(args.format, "--format")
    reader_cfg = (
        cfg.reader
        if cfg.reader.format == args.format
        else OmegaConf.to_object(OmegaConf.structured(reader.schema))
    )
    path = Path(args.input)
    records: Records = reader.read(path, reader_cfg, kind.columns(f"task.{task}", cfg))
    split = kind.to_split(records, cfg)
    check_known(kind, split, run.labels[task])
    docs = [r.doc for r in records.rows] if kind.token_level else None
    pred = predict(run, task, split.inputs, path, docs=docs, lines=split.lines)
    metrics = kind.score(cfg, split.targets, pred, run.cfg.metrics.mode)
    report = kind.report(
        cfg, path.name, task, split.targets, pred, run.labels[task], run.cfg.metrics.mode
    )
    print(json.dumps({f"{path.name}/{task}/{k}": v for k, v in metrics.items()}, indent=2))
    if args.output:
        args.output.write_text(report, encoding="utf-8")
    else:
        print(report)
    return metrics


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.chunk_size < 1:
        sys.exit(f"mtfsl-predict: error: --chunk-size={args.chunk_size}: expected >= 1")
    from mtfsl.inference.run import load_run
    from mtfsl.utils.console import library_bars

    library_bars(False)  # keep standard error for errors
    try:
        run = load_run(args.run_dir)
        task = run.task(args.task)
        if args.backend != "torch":
            from mtfsl.inference.ort import Backend, attach_onnx, onnx_dir

            folder = args.onnx_dir or onnx_dir(args.run_dir, task)
            attach_onnx(run, args.run_dir, task, Backend(args.backend), folder)
        if args.score:
            score_file(args, run, task)
        else:
            run_prediction(args, run, task)
    except (MtfslError, OSError) as err:
        sys.exit(f"mtfsl-predict: error: {err}")


if __name__ == "__main__":
    main()
