"""Prediction memory and speed: ``mtfsl-predict`` on the CoNLL-2003 test set, and on the same
sentences repeated ``--times`` over (one or more counts), each in a fresh process.

Streaming means peak memory must not grow with the input; the printed peak RSS of the two
runs shows whether it does. The repeated file is written to a temporary folder (never into
the project) and deleted afterwards.

Usage:  MTFSL_DATA_ROOT=../shared/data python scripts/bench_predict.py RUN_DIR [--times 4 16]
Prints per input: sentences, seconds, sentences/s and peak RSS; writes ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def measure(run_dir: Path, source: Path, extra: list[str]) -> dict[str, float]:
    """One mtfsl-predict process: wall seconds and its peak RSS (MB)."""
    predict = shutil.which("mtfsl-predict") or str(Path(sys.executable).with_name("mtfsl-predict"))
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [predict, str(run_dir), str(source), "--format", "conll", *extra]
        cmd += ["--output", str(Path(tmp) / "out.conll")]
        # a fresh child per measurement: RUSAGE_CHILDREN's maximum then is that child's peak
        code = (
            "import resource, subprocess, sys, time; start = time.perf_counter(); "
            "subprocess.run(sys.argv[1:], check=True); "
            "print(time.perf_counter() - start, "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, *cmd], capture_output=True, text=True, check=False
        )
        if out.returncode:
            sys.exit(f"bench_predict: mtfsl-predict failed:\n{out.stderr[-3000:]}")
        sentences = (Path(tmp) / "out.conll").read_text(encoding="utf-8").count("\n\n")
    seconds, rss = (float(x) for x in out.stdout.split())
    return {"sentences": sentences, "seconds": seconds, "peak_rss_mb": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished mtfsl-train run (CoNLL NER)")
    parser.add_argument(
        "--times", type=int, nargs="+", default=[8], help="copies of the test set (one run each)"
    )
    parser.add_argument("--chunk-size", help="passed to mtfsl-predict")
    parser.add_argument("--out", type=Path, default=Path("bench_predict.json"))
    args = parser.parse_args()
    root = os.environ.get("MTFSL_DATA_ROOT")
    test = Path(root or "") / "conll2003" / "test.txt"
    if not root or not test.is_file():
        sys.exit("bench_predict: set MTFSL_DATA_ROOT to the folder holding conll2003/test.txt")
    extra = ["--chunk-size", args.chunk_size] if args.chunk_size else []
    results = {}
    text = test.read_text(encoding="utf-8")
    for times in [1, *args.times]:
        with tempfile.TemporaryDirectory() as tmp:
            source = test
            if times > 1:
                source = Path(tmp) / f"test_x{times}.txt"
                source.write_text("\n".join([text] * times), encoding="utf-8")
            name = "test" if times == 1 else f"test x{times}"
            results[name] = r = measure(args.run_dir, source, extra)
        print(
            f"{name}: {r['sentences']} sentences in {r['seconds']:.1f} s "
            f"({r['sentences'] / r['seconds']:.0f} sentences/s incl. loading), "
            f"peak RSS {r['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
