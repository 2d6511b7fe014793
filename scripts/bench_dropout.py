"""Dropout cost on this CPU: torch's ``nn.Dropout`` against ``FastDropout`` (mtfsl's
``hardware.fast_dropout``), forward and backward, on MiniLM-shaped activations; and attention
with dropout on its probabilities: ``scaled_dot_product_attention`` against
``fast_dropout_attention``. Each pair alternates in one process so the machine's drift hits
both alike.

Usage:  python scripts/bench_dropout.py [--rounds 10] [--shape 32 22 384] [--heads 12]
Prints nanoseconds per element (dropout) and milliseconds per call (attention), medians over
rounds, and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from mtfsl.model.dropout import FastDropout, fast_dropout_attention


def ns_per_element(layer: nn.Module, x: torch.Tensor, calls: int) -> float:
    """Forward + backward of ``layer`` on ``x``, ``calls`` times; ns per element."""
    grad = torch.ones_like(x)
    start = time.perf_counter()
    for _ in range(calls):
        layer(x).backward(grad)
    return (time.perf_counter() - start) / calls / x.numel() * 1e9


def attention_ms(
    fast: bool, qkv: list[torch.Tensor], mask: torch.Tensor, p: float, calls: int
) -> float:
    """Forward + backward of attention with dropout ``p`` on its probabilities; ms per call."""
    q, k, v = qkv
    start = time.perf_counter()
    for _ in range(calls):
        if fast:
            out = fast_dropout_attention(nn.Module(), q, k, v, mask, dropout=p, is_causal=False)[0]
        else:
            out = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        out.sum().backward()
    return (time.perf_counter() - start) / calls * 1e3


def compare_attention(args: argparse.Namespace) -> None:
    batch, length, hidden = args.shape
    qkv = [
        torch.randn(batch, args.heads, length, hidden // args.heads, requires_grad=True)
        for _ in range(3)
    ]
    mask = torch.ones(batch, 1, length, length, dtype=torch.bool)
    mask[: batch // 2, :, :, length * 2 // 3 :] = False  # half the rows end in padding
    times: dict[str, list[float]] = {"SDPA": [], "fast_dropout_attention": []}
    for _ in range(args.rounds):
        for name in times:
            fast = name != "SDPA"
            times[name].append(attention_ms(fast, qkv, mask, args.p, args.calls))
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"attention, {args.heads} heads, training:")
    for name, value in med.items():
        print(f"{name}: {value:.3f} ms per call (forward + backward)")
    print(f"speed-up: {med['SDPA'] / med['fast_dropout_attention']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=50, help="calls per side per round")
    parser.add_argument("--shape", type=int, nargs="+", default=[32, 22, 384])
    parser.add_argument("--p", type=float, default=0.1)
    parser.add_argument("--heads", type=int, default=12, help="attention heads")
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
    compare_attention(args)


if __name__ == "__main__":
    main()
