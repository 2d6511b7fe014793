"""Dropout cost on this CPU: torch's ``nn.Dropout`` against ``FastDropout`` (mtfsl's
``hardware.fast_dropout``), forward and backward, on MiniLM-shaped activations, alternating
the two in one process so the machine's drift hits both alike.

Usage:  python scripts/bench_dropout.py [--rounds 10] [--shape 32 22 384]
Prints nanoseconds per element for each (median over rounds) and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from mtfsl.model.dropout import FastDropout


def ns_per_element(layer: nn.Module, x: torch.Tensor, calls: int) -> float:
    """Forward + backward of ``layer`` on ``x``, ``calls`` times; ns per element."""
    grad = torch.ones_like(x)
    start = time.perf_counter()
    for _ in range(calls):
        layer(x).backward(grad)
    return (time.perf_counter() - start) / calls / x.numel() * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=50, help="calls per side per round")
    parser.add_argument("--shape", type=int, nargs="+", default=[32, 22, 384])
    parser.add_argument("--p", type=float, default=0.1)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(*args.shape, requires_grad=True)
    sides = {"nn.Dropout": nn.Dropout(args.p), "FastDropout": FastDropout(args.p)}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, layer in sides.items():
            times[name].append(ns_per_element(layer, x, args.calls))
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"threads {torch.get_num_threads()}, shape {tuple(args.shape)}, p {args.p}")
    for name, value in med.items():
        print(f"{name}: {value:.2f} ns per element (forward + backward)")
    print(f"speed-up: {med['nn.Dropout'] / med['FastDropout']:.2f}x")


if __name__ == "__main__":
    main()
