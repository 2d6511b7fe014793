"""Prediction speed and memory of a finished run.

``--backends``: the run's test split predicted by PyTorch, by the ONNX fp32 graph and by the
int8 graph (``mtfsl-export --format onnx --int8``, made if missing), and for a tagging run by
the HF ``Trainer.predict`` baseline of scripts/bench_train.py on the exported HF model, in
one process, alternating sides for ``--rounds`` rounds (medians compared). Tokenisation is
done once, outside the timings (HF's side is timed on pre-tokenised features too). Prints
sentences/s, the ratios, each side's scores, how many predictions differ from PyTorch's and
the largest score difference. And a bound: the encoder's matrix products over the timed
batches at this machine's plain fp32 matmul rate (bench_train.py's), the least time any fp32
backend computing those products can take here, against PyTorch's time.

Otherwise (memory): ``mtfsl-predict`` on the CoNLL-2003 test set, and on the same sentences
repeated ``--times`` over, each in a fresh process. Streaming means peak memory must not grow
with the input; the printed peak RSS of the runs shows whether it does. The repeated file is
written to a temporary folder (never into the project) and deleted afterwards.

Usage:  MTFSL_DATA_ROOT=../shared/data python scripts/bench_predict.py RUN_DIR --backends
        MTFSL_DATA_ROOT=../shared/data python scripts/bench_predict.py RUN_DIR [--times 4 16]
Writes ``--out`` (JSON).
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


def hf_trainer_side(run, task: str, hf_dir: Path, split):
    """bench_train.py's baseline: run_ner-style features (first sub-token of each word
    labelled), ``Trainer.predict`` with its defaults (file order, batch 8). Returns a timed
    callable giving a tag per word."""
    import numpy as np
    from datasets import Dataset
    from transformers import (
        AutoModelForTokenClassification,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )

    labels = run.labels[task]
    model = AutoModelForTokenClassification.from_pretrained(hf_dir).eval()
    tokenizer = run.tokenizer
    max_length = run.cfg.model.max_length

    def encode(batch):
        enc = tokenizer(
            batch["words"], is_split_into_words=True, truncation=True, max_length=max_length
        )
        enc["labels"] = []
        for i in range(len(batch["words"])):
            previous, row = None, []
            for word in enc.word_ids(i):
                row.append(-100 if word is None or word == previous else 0)
                previous = word
            enc["labels"].append(row)
        return enc

    raw = Dataset.from_dict({"words": list(split.inputs)})
    test = raw.map(encode, batched=True, remove_columns=["words"])
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(), report_to=[], use_cpu=True, disable_tqdm=True
    )
    trainer = Trainer(
        model=model, args=args, data_collator=DataCollatorForTokenClassification(tokenizer)
    )

    def predict():
        out = trainer.predict(test)
        pred = np.argmax(out.predictions, -1)
        tags = [
            [labels[p] for p, g in zip(prow, grow, strict=True) if g != -100]
            for prow, grow in zip(pred, out.label_ids, strict=True)
        ]
        # words cut off by truncation get no tag from run_ner; "O" here, so it is scored
        return [
            t + ["O"] * (len(words) - len(t)) for t, words in zip(tags, split.inputs, strict=True)
        ]

    return predict


def fp32_bound(config, lengths: list[int], batch: int, median: dict[str, float]) -> dict:
    """Print and return the encoder's matrix-product work over the timed batches, the plain
    fp32 matmul rate here, the least time that work takes at that rate (no fp32 backend can
    predict faster) and the fraction of that rate each fp32 side reached, all time counted."""
    from bench_train import matmul_flops, prediction_flops  # this script's folder

    flops, rate = prediction_flops(list(lengths), batch, config), matmul_flops(2.0, config)
    floor = flops / rate
    reached = {side: flops / median[side] / rate for side in ("torch", "onnx")}
    print(
        f"fp32 bound: {flops / 1e9:.0f} GFLOP of matrix products at the plain matmul rate "
        f"({rate / 1e9:.0f} GFLOP/s) take {floor:.2f} s, so no fp32 backend beats torch by more "
        f"than {median['torch'] / floor:.2f}x here; "
        + ", ".join(f"{side} ran at {r:.0%} of that rate" for side, r in reached.items())
    )
    return {
        "gflop": flops / 1e9,
        "matmul_gflops": rate / 1e9,
        "floor_seconds": floor,
        "max_ratio_vs_torch": median["torch"] / floor,
        "fraction_of_matmul_rate": reached,
    }


def load_test_split(run, task: str, root: str | None):
    """The test split of ``task`` (data.root replaced by ``root`` if given) and its features,
    tokenised once as the evaluation does."""
    from dataclasses import replace

    from mtfsl.data.splits import load_task
    from mtfsl.pipeline.prepare import split_features

    data = replace(run.cfg.data, root=root) if root else run.cfg.data
    split = load_task(run.tasks[task], data).splits["test"]
    labels = run.labels[task]
    return split, split_features(
        split, run.tasks[task], labels, run.tokenizer, run.cfg, cache=False
    )


def compare_backends(args: argparse.Namespace, root: str | None) -> None:
    import statistics
    import time

    import torch

    from mtfsl.errors import ConfigError
    from mtfsl.export import export
    from mtfsl.inference.onnx import Compared, differing, export_onnx
    from mtfsl.inference.ort import Backend, OnnxTaskModel, onnx_dir
    from mtfsl.inference.run import load_run
    from mtfsl.pipeline.evaluate import predict_ids
    from mtfsl.pipeline.prepare import EvalSet, collator_for

    run = load_run(args.run_dir)
    task = run.task(args.task)
    cfg, labels = run.cfg.task[task], run.labels[task]
    kind = run.tasks[task].kind
    split, features = load_test_split(run, task, root)
    eval_set = EvalSet(features, split)
    collator = collator_for([run.tasks[task].kind], run.tokenizer, run.cfg.hardware)
    folder = args.onnx_dir or onnx_dir(args.run_dir, task)
    if not (folder / Backend.ONNX_INT8.graph).is_file():
        export_onnx(args.run_dir, folder, task, int8=True, check_split=None)
    graphs = {
        b: OnnxTaskModel(run.model, run.tasks[task], folder / b.graph)
        for b in (Backend.ONNX, Backend.ONNX_INT8)
    }

    batch = args.batch_size or run.cfg.trainer.eval_batch_size

    def ours(model):
        return lambda: kind.to_labels(
            cfg,
            predict_ids(model, run.tasks[task], eval_set, run.accelerator, collator, batch),
            labels,
        )

    sides = {"torch": ours(run.model), **{b.value: ours(g) for b, g in graphs.items()}}
    if kind.token_level and not args.no_hf:
        hf_dir = Path(tempfile.mkdtemp()) / "hf"
        try:
            exported = export(args.run_dir, hf_dir, task)
        except ConfigError as err:  # a CRF head, say: HF's side would be another model
            print(f"no HF side: {err}")
        else:
            sides["hf_trainer_predict"] = hf_trainer_side(run, task, exported, split)
    preds, seconds = {}, {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, side in sides.items():
            start = time.perf_counter()
            preds[name] = side()
            seconds[name].append(time.perf_counter() - start)
    fp32 = Compared(graphs[Backend.ONNX], run.model)  # the score differences, untimed
    ours(fp32)()
    int8 = Compared(graphs[Backend.ONNX_INT8], run.model, fp32.reference)
    ours(int8)()
    n = len(split)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    decisions = {name: [kind.decision(p) for p in pred] for name, pred in preds.items()}
    results = {
        "examples": n,
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        "sides": {},
    }
    for name in sides:
        differ, total = differing(decisions["torch"], decisions[name])
        scores = kind.score(cfg, split.targets, preds[name], run.cfg.metrics.mode)
        results["sides"][name] = {
            "seconds": seconds[name],
            "median_seconds": median[name],
            "examples_per_second": n / median[name],
            "scores": scores,
            "differ_from_torch": differ,
            "predictions": total,
        }
        shown = ", ".join(f"{k} {v:.2f}" for k, v in scores.items())
        print(
            f"{name}: {n / median[name]:.0f} examples/s (median of {args.rounds}: "
            f"{median[name]:.2f} s); {shown}; {differ} of {total} predictions differ from torch's"
        )
    results["max_abs_score_diff"] = {"onnx": fp32.max_diff, "onnx-int8": int8.max_diff}
    print(
        f"max |score difference| against torch: onnx {fp32.max_diff:.2e}, "
        f"onnx-int8 {int8.max_diff:.2e}"
    )
    ratios = {
        f"{a} / {b}": median[b] / median[a]
        for a, b in [
            ("onnx", "torch"),
            ("onnx-int8", "torch"),
            ("torch", "hf_trainer_predict"),
            ("onnx", "hf_trainer_predict"),
            ("onnx-int8", "hf_trainer_predict"),
        ]
        if a in median and b in median
    }
    for name, ratio in ratios.items():
        print(f"speed ratio {name}: {ratio:.2f}")
    results["ratios"] = ratios
    results["eval_batch_size"] = batch
    results["fp32_bound"] = fp32_bound(run.model.encoder.config, features["length"], batch, median)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished mtfsl-train run (CoNLL NER)")
    parser.add_argument(
        "--times", type=int, nargs="+", default=[8], help="copies of the test set (one run each)"
    )
    parser.add_argument("--chunk-size", help="passed to mtfsl-predict")
    parser.add_argument("--out", type=Path, default=Path("bench_predict.json"))
    parser.add_argument("--backends", action="store_true", help="PyTorch against ONNX (above)")
    parser.add_argument("--rounds", type=int, default=3, help="--backends: rounds of all sides")
    parser.add_argument("--task", help="--backends: which task of a multi-task run")
    parser.add_argument("--no-hf", action="store_true", help="--backends: skip HF's side")
    parser.add_argument(
        "--batch-size", type=int, help="--backends: our sides' batch (default the run's eval one)"
    )
    parser.add_argument(
        "--onnx-dir", type=Path, help="--backends: the exported graphs (default RUN/onnx/TASK)"
    )
    args = parser.parse_args()
    root = os.environ.get("MTFSL_DATA_ROOT")
    if args.backends:
        compare_backends(args, root)
        return
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
