"""Run a model over an evaluation set, map predictions back to examples, score, write files.

What a batch predicts, how predictions map back to examples, and how a task is scored,
reported and written are its kind's (``kinds.protocols.Kind``); this module runs the model
and moves rows.
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
from mtfsl.evaluation.report import atomic_write
from mtfsl.model.multitask import MultiTaskModel
from mtfsl.pipeline.prepare import EvalSet
from mtfsl.resolve import Task


@torch.no_grad()
def predict_ids(
    model: MultiTaskModel,
    task: Task,
    eval_set: EvalSet,
    accelerator: Accelerator,
    collator: PaddingCollator,
    batch_size: int,
    show: bool = False,
    probabilities: list[Any] | None = None,
    lockstep: bool = False,
) -> list[Any]:
    """Predicted label ids in file order, as the task's kind shapes them (an
    array per sentence for tagging, an int per example for classification).

    Decoding (argmax, Viterbi, a span search) runs on the device; only the decoded rows
    travel back, so memory does not grow with the number of labels times positions. ``show``:
    a progress bar (on a terminal, main process). ``probabilities``: a list to fill with each
    example's probability of its predicted labels (left empty where the head has none).
    ``lockstep``: every process must call the model as often as the others (a sharded
    model gathers its weights collectively); a process with one batch fewer repeats one and
    drops its rows.
    """
    kind, name = task.kind, task.name
    features, split = eval_set.features, eval_set.split
    # Under data parallelism each process predicts every num_processes-th batch; the rows are
    # then gathered so every process scores the whole split (and agrees on early stopping).
    batches = sorted_batches(features["length"], batch_size)
    shard = batches[accelerator.process_index :: accelerator.num_processes]
    filler = -(-len(batches) // accelerator.num_processes) - len(shard) if lockstep else 0
    loader = DataLoader(features, batch_sampler=shard + batches[:filler], collate_fn=collator)
    model.eval()
    rows, probs = [], []
    bar = tqdm(loader, desc=f"eval {name}", leave=False, dynamic_ncols=True, disable=not show)
    for i, batch in enumerate(bar):
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        with torch.profiler.record_function("mtfsl.predict"):  # scripts/profile_step.py
            with accelerator.autocast():
                scores = model(name, batch)
            ids = model.decode(name, scores, batch)
            if i >= len(shard):
                continue  # a filler call (lockstep)
            rows.append(kind.owned(batch, ids))
            if probabilities is not None:
                p = model.probabilities(name, scores, batch, ids)
                if p is not None:
                    probs.append(kind.owned(batch, p))
    if accelerator.num_processes > 1:
        rows, probs = gather_object(rows), gather_object(probs)
    if probs:
        probabilities.extend(kind.collect_probabilities(np.concatenate(probs), split))
    return kind.collect(task.cfg, np.concatenate(rows) if rows else np.empty((0, 3)), split)


def evaluate_split(
    model: MultiTaskModel,
    task: Task,
    labels: list[str],
    eval_set: EvalSet,
    accelerator: Accelerator,
    collator: PaddingCollator,
    batch_size: int,
    mode: MetricMode,
    calibrate: bool = False,
    lockstep: bool = False,
) -> tuple[dict[str, float], list[Any]]:
    """Scores (percent) and predicted labels for one split. ``calibrate`` (the dev split in
    training): a kind that fits its decision rule on dev outputs (``Kind.calibrate``)
    does so first; what it fitted is reported with the scores."""
    kind, cfg, gold = task.kind, task.cfg, eval_set.split.targets
    show = accelerator.is_main_process and sys.stderr.isatty()
    probs: list[Any] | None = [] if calibrate and kind.calibrates(cfg) else None
    ids = predict_ids(
        model, task, eval_set, accelerator, collator, batch_size, show, probs, lockstep
    )
    fitted: dict[str, float] = {}
    if probs is not None:
        ids, fitted = kind.calibrate(cfg, model.heads[task.name], probs, gold, labels)
    pred = kind.to_labels(cfg, ids, labels)
    return {**kind.score(cfg, gold, pred, mode), **fitted}, pred


def write_split_outputs(
    run_dir: Path,
    split: str,
    task: Task,
    labels: list[str],
    eval_set: EvalSet,
    pred: list[Any],
    mode: MetricMode,
) -> None:
    """``reports/{split}_{task}.txt`` and ``predictions/{split}_{task}.SUFFIX`` (the kind's)."""
    kind, name = task.kind, task.name
    report = kind.report(task.cfg, split, name, eval_set.split.targets, pred, labels, mode)
    atomic_write(run_dir / "reports" / f"{split}_{name}.txt", report)
    kind.write_predictions(run_dir / "predictions" / f"{split}_{name}", eval_set.split, pred)
