"""How many training sentences a K-shot sampler draws, mean over seeds, with and without the
``few_shot.min_words`` filter: what docs/results.md compares with EntLM's published draws.

    python scripts/kshot_draws.py DATA_ROOT [--k 5 10 20 50] [--seeds 10] [overrides...]

Each draw goes through ``apply_few_shot``, as a training run's does (task=conll, EXACT).
"""

from __future__ import annotations

import argparse
import statistics

from mtfsl.data.splits import data_root, load_task
from mtfsl.pipeline.fewshot import apply_few_shot
from mtfsl.resolve import compose_config, resolve_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root")
    parser.add_argument("--k", type=int, nargs="+", default=[5, 10, 20, 50])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 1..N")
    parser.add_argument("overrides", nargs="*", help="e.g. task=conll_iob1")
    args = parser.parse_args()
    base = [f"data.root={args.data_root}", "few_shot=entlm", *args.overrides]
    cfg = compose_config(base)
    (name,) = cfg.task
    full = load_task(resolve_task(name, cfg.task[name]), cfg.data)
    print("| K | min_words | sentences per draw (mean over seeds) | min | max |")
    print("|---|---|---:|---:|---:|")
    for k in args.k:
        for min_words in (0, cfg.few_shot.min_words):
            fs = compose_config([*base, f"few_shot.k={k}", f"few_shot.min_words={min_words}"])
            sizes = [
                apply_few_shot(
                    full,
                    resolve_task(full.name, cfg.task[name]),
                    fs.few_shot,
                    seed,
                    data_root(cfg.data),
                )[1]["num_train"]
                for seed in range(1, args.seeds + 1)
            ]
            print(
                f"| {k} | {min_words} | {statistics.mean(sizes):.2f} | {min(sizes)} | "
                f"{max(sizes)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
