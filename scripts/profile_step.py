"""Where a training step and a prediction batch spend their time, and what that bounds.

Runs our default CoNLL-2003 recipe for ``--steps`` optimiser steps (no dev set) and its test
prediction under ``torch.profiler``, then splits the CPU time inside the ``mtfsl.train_step``
and ``mtfsl.predict`` ranges into matrix multiplies, attention kernels, dropout masks,
activations and norms, the optimizer, the embedding gradient, and the rest. It prints each
share, the matrix multiplies' own FLOP/s against a plain ``torch.matmul`` of the
feed-forward's shape, and the ceiling: how much faster a step (or prediction) could get if
every other operation took no time at all.

Profiling adds a few microseconds per operation, which lands in the non-matmul categories,
so the ceilings printed are generous.

Usage:  MTFSL_DATA_ROOT=../shared/data python scripts/profile_step.py [--steps 30]
        [--warmup 5] [--out profile_step.json] [OVERRIDES...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

RANGES = {"mtfsl.train_step": "train", "mtfsl.predict": "predict"}
MATMUL = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")
# Checked in this order against the operation itself, then against its enclosing operations.
CATEGORIES = {
    "matmul": MATMUL,
    "attention kernel": ("aten::_scaled_dot_product", "aten::_softmax"),
    "dropout masks": ("aten::bernoulli", "aten::random_", "aten::native_dropout"),
    "activation and layer norm": ("aten::gelu", "aten::native_layer_norm"),
    "optimizer": ("Optimizer.step", "aten::_fused_adam"),
    "embedding gradient": ("aten::embedding_dense_backward", "aten::embedding_backward"),
}
OTHER = "other (elementwise, copies, framework)"


@dataclass(frozen=True)
class Op:
    """One profiled operation: its own time (children excluded), the names of its enclosing
    operations (innermost first) and its input shapes."""

    name: str
    self_us: float
    parents: tuple[str, ...]
    shapes: tuple = ()


def category(op: Op) -> str:
    for name in (op.name, *op.parents):
        for cat, prefixes in CATEGORIES.items():
            if name.startswith(prefixes):
                return cat
    return OTHER


def matmul_flop(op: Op) -> float:
    """Multiply-adds x 2 of an mm / addmm / bmm / baddbmm from its input shapes."""
    added_first = op.name in ("aten::addmm", "aten::baddbmm")  # (added term, a, b, ...)
    shapes = op.shapes[1:] if added_first else op.shapes
    if len(shapes) < 2 or not shapes[0] or not shapes[1]:
        return 0.0  # shapes not recorded
    a, b = shapes[0], shapes[1]
    batch = a[0] if len(a) == 3 else 1
    return 2.0 * batch * a[-2] * a[-1] * b[-1]


def breakdown(ops: Iterable[Op]) -> dict[str, float]:
    """Microseconds per category, plus ``matmul_flop``."""
    out: dict[str, float] = defaultdict(float)
    for op in ops:
        cat = category(op)
        out[cat] += op.self_us
        if op.name in MATMUL:
            out["matmul_flop"] += matmul_flop(op)
    return dict(out)


def total_us(parts: dict[str, float]) -> float:
    """All time of a ``breakdown`` (every category, not the FLOP count)."""
    return sum(v for k, v in parts.items() if k != "matmul_flop")


def ceiling(parts: dict[str, float]) -> float:
    """How many times faster the whole would be if only the matrix multiplies took time."""
    return total_us(parts) / parts["matmul"] if parts.get("matmul") else float("inf")


def _phase(event: object, skipped: set[int]) -> tuple[str | None, tuple[str, ...]]:
    """The phase of the range an event lies in (None outside them or in a left-out step) and
    the names of the operations between the event and that range, innermost first."""
    parents, node = [], event
    while node is not None:
        if node.name in RANGES:
            return (None if node.id in skipped else RANGES[node.name]), tuple(parents)
        if node is not event:
            parents.append(node.name)
        node = node.cpu_parent
    return None, ()


def collect(events: list, warmup: int) -> dict[str, list[Op]]:
    """Operations per phase; the first ``warmup`` training steps are left out (allocation and
    first-call costs). A range's own time (Python between operations) counts as an operation."""
    steps = sorted((e for e in events if e.name == "mtfsl.train_step"), key=_start)
    skipped = {e.id for e in steps[:warmup]}
    phases: dict[str, list[Op]] = {"train": [], "predict": []}
    for event in events:
        phase, parents = _phase(event, skipped)
        if phase is not None:
            shapes = tuple(tuple(s) if s else () for s in (event.input_shapes or ()))
            phases[phase].append(Op(event.name, event.self_cpu_time_total, parents, shapes))
    return phases


def _start(event: object) -> float:
    return event.time_range.start


def profile_run(root: str, steps: int, extra: list[str]) -> list:
    """Events of the default recipe (``bench_train.ours_config``) run under the profiler."""
    from bench_train import ours_config  # scripts/ is on sys.path when run as a script
    from torch.profiler import ProfilerActivity, profile

    from mtfsl.job import run

    cfg = ours_config(root, steps, extra)
    with (
        tempfile.TemporaryDirectory() as tmp,
        profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof,
    ):
        run(cfg, Path(tmp) / "run")
    return list(prof.events())


def report(phases: dict[str, list[Op]], peak: float, units: dict[str, tuple[int, str]]) -> dict:
    result = {"matmul_benchmark_flops_per_second": peak}
    for phase, ops in phases.items():
        if not ops:  # e.g. a task without a test set predicts nothing
            continue
        parts = breakdown(ops)
        total = total_us(parts)
        count, unit = units[phase]
        rate = parts.get("matmul_flop", 0.0) / (parts.get("matmul", 0.0) / 1e6 or 1.0)
        print(f"{phase}: {total / 1e3 / count:.1f} ms per {unit} (profiled)")
        for cat in (*CATEGORIES, OTHER):
            us = parts.get(cat, 0.0)
            print(f"  {cat:<40} {us / 1e3 / count:8.1f} ms {us / total:6.1%}")
        print(
            f"  matmul rate: {rate / 1e9:.1f} GFLOP/s = {rate / peak:.0%} of the plain matmul "
            f"benchmark (best of before and after profiling: {peak / 1e9:.1f} GFLOP/s)"
        )
        print(f"  ceiling (only the matrix multiplies left): {ceiling(parts):.2f}x")
        result[phase] = {
            "ms_per_" + unit: total / 1e3 / count,
            "shares": {cat: parts.get(cat, 0.0) / total for cat in (*CATEGORIES, OTHER)},
            "matmul_flops_per_second": rate,
            "ceiling": ceiling(parts),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="optimiser steps to run")
    parser.add_argument("--warmup", type=int, default=5, help="first steps left out")
    parser.add_argument("--out", type=Path, default=Path("profile_step.json"))
    parser.add_argument("overrides", nargs="*", help="extra mtfsl-train overrides")
    args = parser.parse_args()
    root = os.environ.get("MTFSL_DATA_ROOT")
    if not root or not (Path(root) / "conll2003" / "test.txt").is_file():
        sys.exit("profile_step: set MTFSL_DATA_ROOT to the folder holding conll2003/test.txt")
    if args.warmup >= args.steps:
        sys.exit("profile_step: --warmup must be smaller than --steps")
    from bench_train import matmul_flops  # scripts/ is on sys.path when run as a script

    before = matmul_flops()  # the machine's speed drifts: best of before and after
    torch.manual_seed(42)
    events = profile_run(root, args.steps, args.overrides)
    phases = collect(events, args.warmup)
    batches = sum(1 for e in events if e.name == "mtfsl.predict")
    units = {"train": (args.steps - args.warmup, "step"), "predict": (batches, "batch")}
    result = report(phases, max(before, matmul_flops()), units)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
