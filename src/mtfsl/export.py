"""``mtfsl-export RUN_DIR [OUT_DIR]``: one task of a run as a standard Hugging Face folder,
or (``--format onnx``) as an ONNX graph for ONNX Runtime.

The task's kind picks the class: tagging runs (linear token head) become
``AutoModelForTokenClassification``; classification, pair and regression runs with ``pooling:
POOLER`` (BERT's dense + tanh over [CLS]) ``AutoModelForSequenceClassification``; QA runs
``AutoModelForQuestionAnswering``. Each carries ``id2label``, so ``transformers.pipeline(...,
model=OUT_DIR)`` loads it with no mtfsl code. The ONNX graph is the same model
(``mtfsl.inference.onnx``); ``mtfsl-predict RUN --backend onnx`` predicts with it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from mtfsl.errors import ConfigError, MtfslError
from mtfsl.inference.hf import export
from mtfsl.inference.onnx import INT8_HINT, KeepFp32, int8_loss
from mtfsl.utils.manifest import TRUST_ENV

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mtfsl-export", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument(
        "out_dir", type=Path, nargs="?", help="default: RUN_DIR/hf/TASK or RUN_DIR/onnx/TASK"
    )
    p.add_argument("--task", help="which task of a multi-task run")
    p.add_argument("--format", choices=["hf", "onnx"], default="hf")
    p.add_argument(
        "--int8",
        action="store_true",
        help="onnx: also a dynamically quantised int8 graph (model_int8.onnx), checked too",
    )
    p.add_argument(
        "--int8-keep-fp32",
        choices=[k.value for k in KeepFp32],
        default=KeepFp32.NONE.value,
        help="onnx --int8: linear maps left in fp32; ffn-out: each layer's feed-forward output "
        "projection (for encoders whose GELU outputs quantise badly, e.g. all-mpnet-base-v2)",
    )
    p.add_argument(
        "--check",
        choices=["dev", "test", "none"],
        default="dev",
        help="onnx: predict this split of the run's task with the graphs and PyTorch and "
        "print both scores and how many predictions differ (default dev)",
    )
    p.add_argument("--data-root", help="onnx --check: data.root, if not the run's own")
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
    try:
        if args.format == "onnx":
            out = _export_onnx(args)
        else:
            out = export(args.run_dir, args.out_dir or _default_out(args, "hf"), args.task)
            print(f"exported to {out}; load with transformers.pipeline(..., model='{out}')")
    except (MtfslError, OSError) as err:
        sys.exit(f"mtfsl-export: error: {err}")


def _default_out(args: argparse.Namespace, fmt: str) -> Path:
    from mtfsl.resolve import load_run_config

    tasks = list(load_run_config(args.run_dir).task)
    task = args.task or (tasks[0] if len(tasks) == 1 else None)
    if task is None:
        raise ConfigError(f"--task: the run has several tasks {tasks}")
    return args.run_dir / fmt / task


def _export_onnx(args: argparse.Namespace) -> Path:
    from mtfsl.inference.onnx import export_onnx, summary
    from mtfsl.utils.console import library_bars

    library_bars(False)  # the check's tokenising bar, the weights' loading bar

    out = args.out_dir or _default_out(args, "onnx")
    split = None if args.check == "none" else args.check
    keep = KeepFp32(args.int8_keep_fp32)
    if keep is not KeepFp32.NONE and not args.int8:
        raise ConfigError("--int8-keep-fp32 applies to the int8 graph: add --int8")
    record = export_onnx(args.run_dir, out, args.task, args.int8, split, args.data_root, keep)
    if record["check"]:
        from mtfsl.resolve import load_run_config, resolve_task

        name = record["task"]
        metric = resolve_task(name, load_run_config(args.run_dir).task[name]).primary_metric
        for line in summary(record["check"], metric):
            print(line)
        if int8_loss(record["check"], metric) > INT8_HINT and keep is KeepFp32.NONE:
            print(
                f"int8 lost more than {INT8_HINT:g} points of {metric}: --int8-keep-fp32 ffn-out "
                "keeps each layer's feed-forward output projection in fp32 (slower, closer)"
            )
    print(
        f"exported to {out}; predict with mtfsl-predict {args.run_dir} --backend onnx"
        + ("" if out == args.run_dir / "onnx" / record["task"] else f" --onnx-dir {out}")
    )
    return out


if __name__ == "__main__":
    main()
