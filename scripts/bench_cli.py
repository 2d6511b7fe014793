"""Wall time of the commands a user types before any training: ``mtfsl-train --help``,
``--cfg job``, a shell-completion query (what one Tab runs), ``mtfsl-predict --help``, and
Hydra's own help path for comparison (what ``--help`` cost before ``mtfsl.cli_help``).

    python scripts/bench_cli.py [--repeat 3]

Prints the median of each over the repeats; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

# the commands installed beside this interpreter (a venv's bin/), else on PATH
BIN = os.path.dirname(sys.executable)
TRAIN = shutil.which("mtfsl-train", path=BIN) or shutil.which("mtfsl-train") or "mtfsl-train"
PREDICT = (
    shutil.which("mtfsl-predict", path=BIN) or shutil.which("mtfsl-predict") or "mtfsl-predict"
)
HYDRA_HELP = [sys.executable, "-c", "import sys; from mtfsl.train import main; main()", "--help"]
COMMANDS = {
    "mtfsl-train --help": ([TRAIN, "--help"], {}),
    "mtfsl-train --cfg job": ([TRAIN, "--cfg", "job"], {}),
    "mtfsl-train Tab (completion of 'task=')": (
        [TRAIN, "-sc", "query=bash"],
        {"COMP_LINE": "mtfsl-train task=", "COMP_POINT": "17"},
    ),
    "mtfsl-predict --help": ([PREDICT, "--help"], {}),
    "Hydra's help (before)": (HYDRA_HELP, {}),
}


def wall(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, check=False)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    for name, (cmd, env) in COMMANDS.items():
        times = [wall(cmd, env) for _ in range(args.repeat)]
        print(f"{name:42s} {statistics.median(times):6.2f} s  (median of {args.repeat})")


if __name__ == "__main__":
    main()
