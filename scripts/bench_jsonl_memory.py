"""Peak memory of ``mtfsl-train`` reading a large tagging task as JSON lines against the same
sentences as CoNLL columns (issue 46, case 13: 1.17 GB against 563 MB before the fix).

The CoNLL-2003 training sentences are repeated to ``--sentences`` (200,000 by default) and
written to a temporary folder (never into the project) twice: as run_ner's JSON lines
(``{"tokens": [...], "ner_tags": [...]}``) and as two columns (token, tag). Each is then the
training file of a task defined on the command line, trained for one step of the tiny model
(``model=tiny``: the data path is what is measured, not the model) in a fresh process with a
fresh features cache, the CoNLL-2003 development set (written the same way) as its dev split.
Prints each process's peak RSS (``wait4``'s ``ru_maxrss``) and the JSONL/CoNLL ratio; the
issue asks for <= 1.5.

Usage:  python scripts/bench_jsonl_memory.py [--data ../shared/data] [--sentences 200000]
Writes ``--out`` (JSON) when given.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from itertools import cycle, islice
from pathlib import Path


def conll_sentences(path: Path) -> Iterator[tuple[list[str], list[str]]]:
    """(tokens, NER tags) of each sentence of a CoNLL-2003 file, read by mtfsl's own reader."""
    from mtfsl.data.readers.text import iter_conll

    for sentence in iter_conll(path):
        yield sentence.column(0), sentence.column(-1)


def write_both(
    sentences: list[tuple[list[str], list[str]]], folder: Path, name: str
) -> dict[str, Path]:
    """The sentences as ``NAME.jsonl`` and as ``NAME.txt`` (token and tag columns)."""
    jsonl, columns = folder / f"{name}.jsonl", folder / f"{name}.txt"
    with jsonl.open("w", encoding="utf-8") as out:
        for tokens, tags in sentences:
            out.write(json.dumps({"tokens": tokens, "ner_tags": tags}) + "\n")
    with columns.open("w", encoding="utf-8") as out:
        for tokens, tags in sentences:
            out.writelines(f"{t} {g}\n" for t, g in zip(tokens, tags, strict=True))
            out.write("\n")
    return {"jsonl": jsonl, "conll": columns}


def task_override(fmt: str, train: Path, dev: Path) -> str:
    if fmt == "jsonl":
        reader = "reader: {format: jsonl}"
    else:
        reader = "reader: {format: conll}, token_column: 0, label_column: 1"
    return f"+task.big={{kind: tagging, {reader}, files: {{train: {train}, dev: {dev}}}}}"


def train_peak(fmt: str, train: Path, dev: Path, tmp: Path) -> dict[str, float]:
    """One ``mtfsl-train`` process on the task: its wall seconds and peak RSS (MiB)."""
    run = tmp / f"run_{fmt}"
    cmd = [sys.executable, "-m", "mtfsl.train", "~task", task_override(fmt, train, dev)]
    cmd += ["model=tiny", "hardware=cpu", "trainer.max_steps=1", "trainer.batch_size=8"]
    cmd += [f"data.cache_dir={tmp / f'cache_{fmt}'}", f"hydra.run.dir={run}"]
    start = time.perf_counter()
    with (tmp / f"{fmt}.stderr").open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        # wait4 rather than proc.wait(): it gives this one child's own peak RSS
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{fmt}: mtfsl-train failed:\n{(tmp / f'{fmt}.stderr').read_text()[-3000:]}")
    return {"peak_mib": usage.ru_maxrss / 1024, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("MTFSL_DATA_ROOT", "../shared/data"))
    )
    parser.add_argument("--sentences", type=int, default=200_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    conll = args.data / "conll2003"
    sentences = list(islice(cycle(conll_sentences(conll / "train.txt")), args.sentences))
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        files = write_both(sentences, tmp, "train")
        dev = write_both(list(conll_sentences(conll / "valid.txt")), tmp, "dev")
        del sentences
        for fmt in ("conll", "jsonl"):  # CoNLL first: the baseline
            results[fmt] = train_peak(fmt, files[fmt], dev[fmt], tmp)
            size = files[fmt].stat().st_size / 2**20
            print(
                f"{fmt:6s} {size:6.1f} MiB file  peak RSS {results[fmt]['peak_mib']:7.1f} MiB"
                f"  {results[fmt]['seconds']:6.1f} s",
                flush=True,
            )
    ratio = results["jsonl"]["peak_mib"] / results["conll"]["peak_mib"]
    print(f"JSONL / CoNLL peak RSS: {ratio:.2f} (issue 46 asks for <= 1.5)")
    if args.out:
        args.out.write_text(
            json.dumps({**results, "ratio": ratio, "sentences": args.sentences}, indent=2)
        )


if __name__ == "__main__":
    main()
