"""Where an exported ONNX graph spends its time, per operator, over a run's test split.

Runs the graph (default ``RUN/onnx/TASK/model.onnx``; ``--graph model_int8.onnx`` for int8)
over the test split in the evaluation's length-sorted batches, once to warm up and once under
ONNX Runtime's profiler, and prints each operator's kernel time and share of the total. For
the matrix products (MatMul and its quantised forms, per weight shape, and the fused
Attention: its Q/K/V projection plus the attention core) it also prints the FLOP/s reached,
next to the plain fp32 matmul rate (scripts/bench_train.py's) on the encoder's shape.

Usage:  MTFSL_DATA_ROOT=../shared/data python scripts/profile_onnx.py RUN [--graph FILE]
        [--task TASK] [--batch-size N] [--out profile_onnx.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from collections import defaultdict
from pathlib import Path

PRODUCTS = ("MatMul", "FusedMatMul", "DynamicQuantizeMatMul", "MatMulIntegerToFloat")
ATTENTION = ("Attention", "QAttention")


def flops(op: str, inputs: list[list[int]], outputs: list[list[int]]) -> float:
    """FLOPs of one kernel call from its shapes; 0 for an operator that is not a product.
    A product [..., K] -> [..., N]: 2 x rows x K x N. Attention over [B, L, H]: the Q/K/V
    projection 2 x B x L x H x 3H, then scores and mixing 4 x B x L^2 x H."""
    if op in PRODUCTS:
        return 2.0 * math.prod(outputs[0][:-1]) * inputs[0][-1] * outputs[0][-1]
    if op in ATTENTION:
        batch, length, hidden = inputs[0]
        return 2.0 * batch * length * hidden * 3 * hidden + 4.0 * batch * length**2 * hidden
    return 0.0


def op_table(events: list[dict], skip_runs: int = 0) -> dict[str, dict[str, float]]:
    """Kernel seconds and GFLOP per operator from ONNX Runtime's profile events, leaving out
    the kernels of the first ``skip_runs`` session runs (a warm-up); products are keyed by
    their weight's shape ("MatMul 384x1536"), since their rates differ by shape."""
    runs = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run")
    start = runs[skip_runs] if skip_runs else 0
    table: dict[str, dict[str, float]] = defaultdict(lambda: {"seconds": 0.0, "gflop": 0.0})
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        if event["ts"] < start:
            continue
        args = event["args"]
        op = args["op_name"]
        inputs = [next(iter(e.values())) for e in args.get("input_type_shape", [])]
        outputs = [next(iter(e.values())) for e in args.get("output_type_shape", [])]
        key = f"{op} {inputs[0][-1]}x{outputs[0][-1]}" if op in PRODUCTS else op
        table[key]["seconds"] += event["dur"] / 1e6
        table[key]["gflop"] += flops(op, inputs, outputs) / 1e9
    return dict(table)


def profile(args: argparse.Namespace, root: str | None) -> dict:
    from bench_predict import load_test_split  # this script's folder
    from bench_train import matmul_flops

    from mtfsl.data.batching import sorted_batches
    from mtfsl.inference.ort import OnnxTaskModel, onnx_dir
    from mtfsl.inference.run import load_run
    from mtfsl.pipeline.prepare import collator_for

    run = load_run(args.run_dir)
    task = run.task(args.task)
    graph = onnx_dir(args.run_dir, task) / args.graph
    if not graph.is_file():
        raise SystemExit(
            f"profile_onnx: {graph} not found; run mtfsl-export {args.run_dir} --format onnx --int8"
        )
    _, features = load_test_split(run, task, root)
    collator = collator_for([run.tasks[task].kind], run.tokenizer, run.cfg.hardware)
    batch = args.batch_size or run.cfg.trainer.eval_batch_size
    with tempfile.TemporaryDirectory() as tmp:
        model = OnnxTaskModel(run.model, run.tasks[task], graph, profile=Path(tmp) / "ort")
        feeds = [
            model.feeds(collator([features[i] for i in rows]))
            for rows in sorted_batches(features["length"], batch)
        ]
        for _ in range(2):  # the first pass warms up: its allocations stay out of the table
            for feed in feeds:
                model.session.run(None, feed)
        events = json.loads(Path(model.session.end_profiling()).read_text(encoding="utf-8"))
    return {
        "graph": str(graph),
        "eval_batch_size": batch,
        "operators": op_table(events, skip_runs=len(feeds)),
        "matmul_gflops": matmul_flops(2.0, run.model.encoder.config) / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished mtfsl-train run, exported")
    parser.add_argument("--graph", default="model.onnx", help="file in RUN/onnx/TASK")
    parser.add_argument("--task", help="which task of a multi-task run")
    parser.add_argument("--batch-size", type=int, help="default: the run's eval batch size")
    parser.add_argument("--out", type=Path, default=Path("profile_onnx.json"))
    args = parser.parse_args()
    result = profile(args, os.environ.get("MTFSL_DATA_ROOT"))
    ops = result["operators"]
    total = sum(o["seconds"] for o in ops.values())
    print(f"{result['graph']}, batch {result['eval_batch_size']}: {total:.3f} s of kernels")
    for name, o in sorted(ops.items(), key=lambda item: -item[1]["seconds"]):
        rate = f"  {o['gflop'] / o['seconds']:.0f} GFLOP/s" if o["gflop"] else ""
        print(f"  {name:32s} {o['seconds']:7.3f} s {o['seconds'] / total:6.1%}{rate}")
    print(f"plain fp32 matmul rate here: {result['matmul_gflops']:.0f} GFLOP/s")
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
