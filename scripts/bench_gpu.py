"""Full CoNLL-2003 training on one GPU: time and test F1 (issue #6: a base-size encoder trains
3 epochs in under 60 seconds on one H200-class GPU).

Usage:  MTFSL_DATA_ROOT=../shared/data python scripts/bench_gpu.py [--out FILE] [OVERRIDES...]
        (make install-mpnet first; make bench-gpu runs it)
By default: model=mpnet, hardware=gpu (bf16 autocast, 2 loader workers, padding to multiples
of 8), the published recipe (lr 5e-5, batch 32, 3 epochs, 10% warmup, weight decay 0.01),
seed 42, dev evaluated after each epoch. OVERRIDES go to mtfsl-train's config after these,
e.g. ``hardware.compile=true`` or ``model=minilm``. Prints the training time (the optimiser
steps: ``time/train_seconds``, without the dev evaluations), the whole run's time (loading,
tokenising, training, evaluating dev and test), tokens/s, peak GPU memory and dev/test F1, and
writes them to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

DEFAULTS = [
    "model=mpnet",
    "hardware=gpu",
    "task=conll",
    "trainer.lr=5e-5",
    "trainer.batch_size=32",
    "trainer.epochs=3",
    "trainer.warmup_ratio=0.1",
    "trainer.weight_decay=0.01",
    "seed=42",
]
TARGET_SECONDS = 60


def summary(metrics: dict[str, float], run_seconds: float, overrides: list[str]) -> dict:
    """The numbers worth recording from a finished run's ``metrics.json``."""
    import transformers

    cuda = torch.cuda.is_available()
    return {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "overrides": [*DEFAULTS, *overrides],
        "train_seconds": metrics["time/train_seconds"],
        "run_seconds": run_seconds,
        "steps": metrics["train/steps"],
        "tokens_per_second": metrics["time/train_tokens_per_second"],
        "padding_fraction": metrics["train/padding_fraction"],
        "peak_cuda_mb": metrics.get("memory/peak_cuda_mb"),
        "peak_rss_mb": metrics["memory/peak_rss_mb"],
        "dev_f1": metrics.get("dev/conll/f1"),
        "test_f1": metrics.get("test/conll/f1"),
    }


def _number(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:,.2f}{unit}"


def report(result: dict) -> str:
    return "\n".join(
        [
            f"device: {result['device']} (torch {result['torch']}, "
            f"transformers {result['transformers']})",
            f"overrides: {' '.join(result['overrides'])}",
            f"train seconds: {result['train_seconds']:.1f} ({result['steps']} steps, "
            f"{result['tokens_per_second']:,.0f} tokens/s, "
            f"padding {100 * result['padding_fraction']:.1f}%)",
            f"target: under {TARGET_SECONDS} s for a base-size encoder on one H200-class GPU",
            f"run seconds: {result['run_seconds']:.1f} (load, tokenise, train, evaluate dev and "
            "test)",
            f"peak memory: GPU {_number(result['peak_cuda_mb'], ' MB')}, "
            f"RSS {result['peak_rss_mb']:,.0f} MB",
            f"dev F1: {_number(result['dev_f1'])}  test F1: {_number(result['test_f1'])}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_gpu.json"))
    parser.add_argument("--run-dir", type=Path, help="keep the run folder here (default: deleted)")
    parser.add_argument("overrides", nargs="*", help="mtfsl-train overrides, applied last")
    args = parser.parse_args(argv)

    from mtfsl.errors import MtfslError
    from mtfsl.job import run
    from mtfsl.resolve import compose_config

    try:
        cfg = compose_config([*DEFAULTS, *args.overrides])
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            metrics = run(cfg, args.run_dir or Path(tmp) / "run")
            run_seconds = time.perf_counter() - start
    except MtfslError as err:  # e.g. no GPU, or model=mpnet not installed
        print(f"bench_gpu: error: {err}", file=sys.stderr)
        return 2
    result = summary(metrics, run_seconds, args.overrides)
    print(report(result))
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
