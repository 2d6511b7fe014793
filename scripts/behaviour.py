"""Record, or check, what five tiny fixed-seed runs write: the guard of a restructuring.

Each run trains the tiny model for a few steps on a toy fixture of one shipped task (CoNLL
tagging with a CRF, Banking77, RTE, STS-B, SQuAD), then this script keeps its ``metrics.json``
without the measurements that vary between identical runs (``time/``, ``memory/``) and the
SHA-256 of every file under ``predictions/``. ``--record`` writes them to a JSON file;
``--check`` runs again and compares, byte for byte, naming every file that differs.

    python scripts/behaviour.py --record tests/fixtures/behaviour.json   # before a change
    python scripts/behaviour.py --check tests/fixtures/behaviour.json    # after it

Float kernels differ between CPU families (AVX-512 against AVX2 only), and so do the last
digits of a tiny model's scores: the record names the CPU features it was made with, and a
check on another family says so instead of comparing (tests/test_behaviour.py skips).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
# one thread: the same reductions whatever the machine's core count and load
COMMON = ["model=tiny", "hardware=cpu", "hardware.threads=1", "seed=3"]
COMMON += ["trainer.max_steps=6", "trainer.batch_size=4"]


def _files(task: str, folder: str, **files: str) -> list[str]:
    return [f"task.{task}.files.{split}={FIXTURES / folder / f}" for split, f in files.items()]


RUNS: dict[str, list[str]] = {
    "conll_crf": [
        "task=conll",
        "task.conll.crf=true",
        *_files("conll", "toy_conll", train="toy.train", dev="toy.dev", test="toy.test"),
    ],
    "banking77": [
        "task=banking77",
        f"data.root={FIXTURES / 'toy_intents'}",
        "task.banking77.files.train=toy_train.csv",
        "task.banking77.files.test=toy_test.csv",
        "task.banking77.labels_file=categories.json",
        "task.banking77.dev_fraction=0.25",
    ],
    "rte": [
        "task=rte",
        "task.rte.dev_fraction=0.2",
        *_files("rte", "toy_pairs", train="train.tsv", test="test.tsv"),
    ],
    "stsb": [
        "task=stsb",
        "task.stsb.dev_fraction=0.3",
        *_files("stsb", "toy_stsb", train="train.tsv", test="test.tsv"),
    ],
    "squad": [
        "task=squad",
        "task.squad.max_length=48",
        "task.squad.stride=8",
        "task.squad.dev_fraction=0.3",
        *_files("squad", "toy_squad", train="train.json", test="test.json"),
    ],
}


def cpu_family() -> str:
    """What decides a float kernel's last digits here: AVX-512 or AVX2 (Linux's flags)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n")[0].split()
    except (OSError, IndexError):
        return "unknown"
    return "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "other"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_one(name: str, overrides: list[str], root: Path) -> dict:
    """One tiny run: its stable metrics and the hash of each predictions file."""
    from mtfsl.job import run
    from mtfsl.resolve import compose_config

    folder = root / name
    cfg = compose_config([*COMMON, f"data.cache_dir={root / 'cache'}", *overrides])
    run(cfg, folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    stable = {k: v for k, v in metrics.items() if not k.startswith(("time/", "memory/"))}
    predictions = {
        p.name: _sha256(p) for p in sorted((folder / "predictions").iterdir()) if p.is_file()
    }
    return {"metrics": stable, "predictions": predictions}


def collect(names: list[str] | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        runs = {n: run_one(n, RUNS[n], Path(tmp)) for n in names or RUNS}
    return {"cpu": cpu_family(), "runs": runs}


def differences(recorded: dict, now: dict) -> list[str]:
    """Each metric and predictions file that is not the same, as one line."""
    out = []
    for name, rec in recorded["runs"].items():
        got = now["runs"][name]
        for key in sorted(set(rec["metrics"]) | set(got["metrics"])):
            a, b = rec["metrics"].get(key), got["metrics"].get(key)
            if json.dumps(a) != json.dumps(b):
                out.append(f"{name}: metrics.json {key}: recorded {a}, now {b}")
        for file in sorted(set(rec["predictions"]) | set(got["predictions"])):
            if rec["predictions"].get(file) != got["predictions"].get(file):
                out.append(f"{name}: predictions/{file} differs")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--record", type=Path, help="write the runs' outputs to this JSON file")
    action.add_argument("--check", type=Path, help="compare the runs' outputs with this file")
    args = parser.parse_args(argv)
    if args.record:
        args.record.write_text(json.dumps(collect(), indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(RUNS)} runs in {args.record}")
        return 0
    recorded = json.loads(args.check.read_text())
    if recorded["cpu"] != cpu_family():
        print(f"recorded on an {recorded['cpu']} CPU, this one is {cpu_family()}: not compared")
        return 0
    diff = differences(recorded, collect(list(recorded["runs"])))
    print("\n".join(diff) or f"{len(recorded['runs'])} runs: byte-identical")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
