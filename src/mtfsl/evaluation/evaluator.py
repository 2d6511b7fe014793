"""Run a model over an evaluation set and turn window logits back into one tag per word."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from mtfsl.config import MetricMode
from mtfsl.data.batching import PaddingCollator, sorted_batches
from mtfsl.data.prepare import EvalSet
from mtfsl.evaluation.metrics import entity_scores
from mtfsl.evaluation.report import atomic_write, split_report, write_predictions
from mtfsl.model.multitask import MultiTaskModel


@torch.no_grad()
def predict_tags(
    model: MultiTaskModel,
    task: str,
    labels: list[str],
    eval_set: EvalSet,
    accelerator: Accelerator,
    collator: PaddingCollator,
    batch_size: int,
) -> list[list[str]]:
    """Predicted tag of every word, in file order.

    The argmax is taken on the device and only the (sentence, word, label) triples of owned
    first sub-tokens travel back, so memory does not grow with the vocabulary of logits.
    """
    features, split = eval_set.features, eval_set.split
    loader = DataLoader(
        features,
        batch_sampler=sorted_batches(features["length"], batch_size),
        collate_fn=collator,
    )
    preds = [np.full(len(words), -1, dtype=np.int64) for words in split.words]
    model.eval()
    for batch in loader:
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        with accelerator.autocast():
            logits = model(task, batch["input_ids"], batch["attention_mask"])
        owned = batch["word_index"] >= 0
        sentence = batch["sentence"][:, None].expand_as(owned)[owned].cpu().numpy()
        word = batch["word_index"][owned].cpu().numpy()
        label = logits.argmax(-1)[owned].cpu().numpy()
        for s, w, y in zip(sentence, word, label, strict=True):
            preds[s][w] = y
    missing = sum(int((p < 0).sum()) for p in preds)
    if missing:  # windowing guarantees coverage; fail loudly rather than score a partial set
        raise RuntimeError(f"{missing} words of {split.path} received no prediction")
    return [[labels[i] for i in p] for p in preds]


def evaluate_split(
    model: MultiTaskModel,
    task: str,
    labels: list[str],
    eval_set: EvalSet,
    accelerator: Accelerator,
    collator: PaddingCollator,
    batch_size: int,
    mode: MetricMode,
) -> tuple[dict[str, float], list[list[str]]]:
    """Scores (percent) and predicted tags for one split."""
    pred = predict_tags(model, task, labels, eval_set, accelerator, collator, batch_size)
    return entity_scores(eval_set.split.tags, pred, mode), pred


def write_split_outputs(
    run_dir: Path,
    split: str,
    task: str,
    labels: list[str],
    eval_set: EvalSet,
    pred: list[list[str]],
    mode: MetricMode,
) -> None:
    """``reports/{split}_{task}.txt`` and ``predictions/{split}_{task}.conll``."""
    gold = eval_set.split.tags
    atomic_write(
        run_dir / "reports" / f"{split}_{task}.txt",
        split_report(split, task, gold, pred, labels, mode),
    )
    write_predictions(
        run_dir / "predictions" / f"{split}_{task}.conll", eval_set.split.words, gold, pred
    )
