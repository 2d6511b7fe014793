"""``mtfsl-predict RUN_DIR``: tag or classify new text with a finished run, offline.

Inputs: raw text (one sentence or text per line; words split at spaces and punctuation, at
spaces only, or by the model's own pre-tokenizer), or a file in a reader's format (conll,
csv, tsv, jsonl) with the task's column settings. Outputs: CoNLL, JSONL (entities with
character offsets) or TSV. Input is read, predicted and written a chunk at a time, so memory
stays bounded however large the input is. ``--score`` scores a labelled file instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from mtfsl.data.readers import READERS
from mtfsl.errors import MtfslError
from mtfsl.inference.stream import Request, run_prediction, score_file
from mtfsl.utils.manifest import TRUST_ENV


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
    p.add_argument(
        "--trust-changed-files",
        action="store_true",
        help="load a checkpoint or export whose files no longer match their SHA256SUMS "
        "(changed or damaged since written); logged",
    )
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.trust_changed_files:
        os.environ[TRUST_ENV] = "1"
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
        req = Request(
            input=args.input,
            text=args.text,
            format=args.format,
            out_format=args.out_format,
            output=args.output,
            split=args.split,
            chunk_size=args.chunk_size,
        )
        if args.score:
            score_file(req, run, task)
        else:
            run_prediction(req, run, task)
    except (MtfslError, OSError) as err:
        sys.exit(f"mtfsl-predict: error: {err}")


if __name__ == "__main__":
    main()
