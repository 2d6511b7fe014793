"""Run a model over an evaluation set, map predictions back to examples, score, write files.

What a batch predicts, how predictions map back to examples, and how a task is scored,
reported and written are its kind's (``TaskKind``); this module runs the model and moves rows.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mtfsl.config import MetricMode
from mtfsl.data.batching import PaddingCollator, sorted_batches
from mtfsl.data.prepare import EvalSet
from mtfsl.evaluation.report import atomic_write
from mtfsl.kinds import get_kind
from mtfsl.model.multitask import MultiTaskModel


@torch.no_grad()
def predict_ids(
    model: MultiTaskModel,
    cfg: Any,
    task: str,
    eval_set: EvalSet,
    accelerator: Accelerator,
    collator: PaddingCollator,
    batch_size: int,
    show: bool = False,
    probabilities: list[Any] | None = None,
) -> list[Any]:
    """Predicted label ids in file order, as the task's kind (``cfg.kind``) shapes them (an
    array per sentence for tagging, an int per example for classification).

    Decoding (argmax, Viterbi, a span search) runs on the device; only the decoded rows
    travel back, so memory does not grow with the number of labels times positions. ``show``:
    a progress bar (on a terminal, main process). ``probabilities``: a list to fill with each
    example's probability of its predicted labels (left empty where the head has none).
    """
    kind = get_kind(cfg.kind)
    features, split = eval_set.features, eval_set.split
    # Under data parallelism each process predicts every num_processes-th batch; the rows are
    # then gathered so every process scores the whole split (and agrees on early stopping).
    batches = sorted_batches(features["length"], batch_size)
    shard = batches[accelerator.process_index :: accelerator.num_processes]
    loader = DataLoader(features, batch_sampler=shard, collate_fn=collator)
    model.eval()
    rows, probs = [], []
    bar = tqdm(loader, desc=f"eval {task}", leave=False, dynamic_ncols=True, disable=not show)
    for batch in bar:
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        with torch.profiler.record_function("mtfsl.predict"):  # scripts/profile_step.py
            with accelerator.autocast():
                scores = model(task, batch)
            ids = model.decode(task, scores, batch)
            rows.append(kind.owned(batch, ids))
            if probabilities is not None:
                p = model.probabilities(task, scores, batch, ids)
                if p is not None:
                    probs.append(kind.owned(batch, p))
    if accelerator.num_processes > 1:
        rows, probs = gather_object(rows), gather_object(probs)
    if probs:
        probabilities.extend(kind.collect_probabilities(np.concatenate(probs), split))
    return kind.collect(cfg, np.concatenate(rows) if rows else np.empty((0, 3)), split)


def evaluate_split(
    model: MultiTaskModel,
    task: str,
    cfg: Any,
    labels: list[str],
    eval_set: EvalSet,
    accelerator: Accelerator,
    collator: PaddingCollator,
    batch_size: int,
    mode: MetricMode,
) -> tuple[dict[str, float], list[Any]]:
    """Scores (percent) and predicted labels for one split."""
    kind = get_kind(cfg.kind)
    show = accelerator.is_main_process and sys.stderr.isatty()
    ids = predict_ids(model, cfg, task, eval_set, accelerator, collator, batch_size, show)
    pred = kind.to_labels(cfg, ids, labels)
    return kind.score(cfg, eval_set.split.targets, pred, mode), pred


def write_split_outputs(
    run_dir: Path,
    split: str,
    task: str,
    cfg: Any,
    labels: list[str],
    eval_set: EvalSet,
    pred: list[Any],
    mode: MetricMode,
) -> None:
    """``reports/{split}_{task}.txt`` and ``predictions/{split}_{task}.SUFFIX`` (the kind's)."""
    kind = get_kind(cfg.kind)
    report = kind.report(cfg, split, task, eval_set.split.targets, pred, labels, mode)
    atomic_write(run_dir / "reports" / f"{split}_{task}.txt", report)
    kind.write_predictions(run_dir / "predictions" / f"{split}_{task}", eval_set.split, pred)
