"""``mtfsl-predict RUN_DIR``: tag or classify new text with a finished run, offline.

Inputs: raw text (one sentence or text per line; words split on whitespace or by the
model's own pre-tokenizer), a CoNLL file, or a CSV file. Outputs: CoNLL, JSONL (entities with
character offsets) or TSV.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from seqeval.metrics.sequence_labeling import get_entities

from mtfsl.config import HeadKind
from mtfsl.data.readers import check_column, csv_header, read_conll, read_csv
from mtfsl.errors import MtfslError
from mtfsl.evaluation.report import escape_tsv
from mtfsl.inference import LoadedRun, load_run, predict


@dataclass
class Inputs:
    """Examples to predict: word lists (token tasks) or texts; the original text and each
    word's character span where known; gold labels when the file has them."""

    items: list
    texts: list[str]
    spans: list[list[tuple[int, int]]] = field(default_factory=list)
    gold: list | None = None
    docs: list[int] = field(default_factory=list)  # CoNLL -DOCSTART- blocks, for data.context


def _whitespace(text: str) -> list[tuple[str, tuple[int, int]]]:
    return [(m.group(), m.span()) for m in re.finditer(r"\S+", text)]


def from_text(lines: Sequence[str], token_level: bool, split: Callable) -> Inputs:
    lines = [line.rstrip("\n") for line in lines if line.strip()]
    if not token_level:
        return Inputs(lines, lines)
    pieces = [split(line) for line in lines]
    return Inputs([[w for w, _ in p] for p in pieces], lines, [[s for _, s in p] for p in pieces])


def _joined(words: list[str]) -> tuple[str, list[tuple[int, int]]]:
    spans, start = [], 0
    for w in words:
        spans.append((start, start + len(w)))
        start += len(w) + 1
    return " ".join(words), spans


def from_conll(path: Path, run: LoadedRun, task: str) -> Inputs:
    cfg = run.cfg.task[task]
    sentences = read_conll(path, cfg.doc_marker)
    check_column(path, sentences, cfg.token_column, "token")
    words = [s.column(cfg.token_column) for s in sentences]
    joined = [_joined(w) for w in words]
    width = min((len(f) for s in sentences for f in s.fields), default=0)
    gold = [s.column(cfg.label_column) for s in sentences] if width > 1 else None
    docs = [s.doc for s in sentences]
    return Inputs(words, [t for t, _ in joined], [s for _, s in joined], gold, docs)


def from_csv(path: Path, run: LoadedRun, task: str) -> Inputs:
    cfg = run.cfg.task[task]
    labelled = cfg.label_field in csv_header(path)
    records = read_csv(path, cfg.text_field, cfg.label_field if labelled else None)
    texts = [r.text for r in records]
    return Inputs(texts, texts, [], [r.label for r in records] if labelled else None)


def write_conll(out, inputs: Inputs, pred: list) -> None:
    for i, (words, tags) in enumerate(zip(inputs.items, pred, strict=True)):
        gold = inputs.gold[i] if inputs.gold else None
        for j, (w, t) in enumerate(zip(words, tags, strict=True)):
            out.write(f"{w} {gold[j]} {t}\n" if gold else f"{w} {t}\n")
        out.write("\n")


def write_jsonl(out, inputs: Inputs, pred: list) -> None:
    for i, (text, labels) in enumerate(zip(inputs.texts, pred, strict=True)):
        if not isinstance(labels, list):
            out.write(json.dumps({"text": text, "label": labels}, ensure_ascii=False) + "\n")
            continue
        spans = inputs.spans[i]
        entities = [
            {
                "type": kind,
                "start": spans[a][0],
                "end": spans[b][1],
                "text": text[spans[a][0] : spans[b][1]],
            }
            for kind, a, b in get_entities(labels)
        ]
        record = {"text": text, "words": inputs.items[i], "tags": labels, "entities": entities}
        out.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_tsv(out, inputs: Inputs, pred: list) -> None:
    for item, labels in zip(inputs.items, pred, strict=True):
        if isinstance(labels, list):
            out.writelines(f"{w}\t{t}\n" for w, t in zip(item, labels, strict=True))
            out.write("\n")
        else:
            out.write(f"{escape_tsv(item)}\t{labels}\n")


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
    return p


def read_inputs(args: argparse.Namespace, run: LoadedRun, task: str) -> Inputs:
    token_level = run.cfg.task[task].head is HeadKind.TOKEN_CLASSIFICATION
    pre = run.tokenizer.backend_tokenizer.pre_tokenizer
    split = _whitespace if args.split == "whitespace" or pre is None else pre.pre_tokenize_str
    if args.text:
        return from_text(args.text, token_level, split)
    if args.format == "text":
        lines = (
            Path(args.input).read_text(encoding="utf-8").splitlines()
            if args.input
            else sys.stdin.readlines()
        )
        return from_text(lines, token_level, split)
    if not args.input:
        raise MtfslError(f"--format {args.format} needs an input file")
    reader = from_conll if args.format == "conll" else from_csv
    return reader(Path(args.input), run, task)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    datasets.disable_progress_bars()  # keep standard error for errors
    try:
        run = load_run(args.run_dir)
        task = run.task(args.task)
        inputs = read_inputs(args, run, task)
        source = Path(args.input or "<text>")
        pred = predict(run, task, inputs.items, source, inputs.docs) if inputs.items else []
    except (MtfslError, OSError) as err:
        sys.exit(f"mtfsl-predict: error: {err}")
    token_level = bool(pred) and isinstance(pred[0], list)
    fmt = args.out_format or ("conll" if token_level else "tsv")
    if fmt == "conll" and not token_level and pred:
        sys.exit("mtfsl-predict: error: --out-format conll is for token tasks; use tsv or jsonl")
    if args.output:
        with args.output.open("w", encoding="utf-8") as handle:
            WRITERS[fmt](handle, inputs, pred)
    else:
        WRITERS[fmt](sys.stdout, inputs, pred)


if __name__ == "__main__":
    main()
