"""Run a model over an evaluation set, map predictions back to examples, score, write files.

Token tasks get one tag per word (windows mapped back to words); sequence tasks one label per
example. How a task is scored, reported and written follows from its ``MetricKind`` and
``HeadKind``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from torch.utils.data import DataLoader

from mtfsl.config import HeadKind, MetricKind, MetricMode, TaskConfig
from mtfsl.data.batching import PaddingCollator, sorted_batches
from mtfsl.data.prepare import EvalSet
from mtfsl.evaluation.metrics import entity_scores, flatten, label_scores
from mtfsl.evaluation.report import (
    atomic_write,
    classification_report_text,
    split_report,
    tag_report,
    write_predictions,
    write_tsv,
)
from mtfsl.model.multitask import MultiTaskModel


def _owned(batch: dict[str, torch.Tensor], ids: torch.Tensor) -> np.ndarray:
    """Rows (sentence, word, label id) for every word this batch predicts; word is 0 for
    sequence tasks. Windows own disjoint words, so each word appears once over all batches."""
    if "word_index" not in batch:
        rows = [batch["sentence"], torch.zeros_like(batch["sentence"]), ids]
        return torch.stack(rows, dim=1).cpu().numpy()
    owned = batch["word_index"] >= 0
    sentence = batch["sentence"][:, None].expand_as(owned)[owned]
    return torch.stack([sentence, batch["word_index"][owned], ids[owned]], dim=1).cpu().numpy()


@torch.no_grad()
def predict_ids(
    model: MultiTaskModel,
    task: str,
    eval_set: EvalSet,
    accelerator: Accelerator,
    collator: PaddingCollator,
    batch_size: int,
) -> list[Any]:
    """Predicted label ids in file order: an array per sentence (token tasks) or an int each.

    Decoding (argmax or Viterbi) runs on the device; only the ids of owned words travel back,
    so memory does not grow with the number of labels times positions.
    """
    features, split = eval_set.features, eval_set.split
    # Under data parallelism each process predicts every num_processes-th batch; the rows are
    # then gathered so every process scores the whole split (and agrees on early stopping).
    batches = sorted_batches(features["length"], batch_size)
    shard = batches[accelerator.process_index :: accelerator.num_processes]
    loader = DataLoader(features, batch_sampler=shard, collate_fn=collator)
    model.eval()
    rows = []
    for batch in loader:
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        with torch.profiler.record_function("mtfsl.predict"):  # scripts/profile_step.py
            with accelerator.autocast():
                scores = model(task, batch)
            rows.append(_owned(batch, model.decode(task, scores, batch)))
    if accelerator.num_processes > 1:
        rows = gather_object(rows)
    token_level = split.is_token_level
    preds = [np.full(len(words) if token_level else 1, -1, np.int64) for words in split.inputs]
    for sentence, word, label in np.concatenate(rows) if rows else []:
        preds[sentence][word] = label
    missing = sum(int((p < 0).sum()) for p in preds)
    if missing:  # windowing guarantees coverage; fail loudly rather than score a partial set
        raise RuntimeError(f"{missing} items of {split.path} received no prediction")
    return preds if token_level else [int(p[0]) for p in preds]


def to_labels(ids: list[Any], labels: list[str]) -> list[Any]:
    return [[labels[i] for i in p] if isinstance(p, np.ndarray) else labels[p] for p in ids]


Scorer = Callable[[list[Any], list[Any], MetricMode], dict[str, float]]
SCORERS: dict[MetricKind, Scorer] = {
    MetricKind.ENTITY: lambda gold, pred, mode: entity_scores(gold, pred, mode),
    MetricKind.TAG_ACCURACY: lambda gold, pred, mode: label_scores(flatten(gold), flatten(pred)),
    MetricKind.CLASSIFICATION: lambda gold, pred, mode: label_scores(gold, pred),
}
REPORTS: dict[MetricKind, Callable[..., str]] = {
    MetricKind.ENTITY: split_report,
    MetricKind.TAG_ACCURACY: tag_report,
    MetricKind.CLASSIFICATION: classification_report_text,
}
PREDICTION_FILES: dict[HeadKind, tuple[str, Callable[..., None]]] = {
    HeadKind.TOKEN_CLASSIFICATION: ("conll", write_predictions),
    HeadKind.SEQUENCE_CLASSIFICATION: ("tsv", write_tsv),
    HeadKind.PROMPT: ("tsv", write_tsv),
}


def evaluate_split(
    model: MultiTaskModel,
    task: str,
    labels: list[str],
    eval_set: EvalSet,
    accelerator: Accelerator,
    collator: PaddingCollator,
    batch_size: int,
    metric: MetricKind,
    mode: MetricMode,
) -> tuple[dict[str, float], list[Any]]:
    """Scores (percent) and predicted labels for one split."""
    ids = predict_ids(model, task, eval_set, accelerator, collator, batch_size)
    pred = to_labels(ids, labels)
    return SCORERS[metric](eval_set.split.targets, pred, mode), pred


def write_split_outputs(
    run_dir: Path,
    split: str,
    task: str,
    cfg: TaskConfig,
    labels: list[str],
    eval_set: EvalSet,
    pred: list[Any],
    mode: MetricMode,
) -> None:
    """``reports/{split}_{task}.txt`` and ``predictions/{split}_{task}.{conll|tsv}``."""
    gold = eval_set.split.targets
    report = REPORTS[cfg.metric](split, task, gold, pred, labels, mode)
    atomic_write(run_dir / "reports" / f"{split}_{task}.txt", report)
    suffix, writer = PREDICTION_FILES[cfg.head]
    writer(run_dir / "predictions" / f"{split}_{task}.{suffix}", eval_set.split.inputs, gold, pred)
