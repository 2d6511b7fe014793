"""A run's batches, ready for the loop: each task's length-grouped, padded training batches as
an endless stream on the device, the task sampler that picks the task(s) of each step, and
length-sorted batches of a split for a head that fits on the training split."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from mtfsl.config import TrainConfig
from mtfsl.data.batching import LengthGroupedBatchSampler, PaddingCollator, sorted_batches
from mtfsl.data.multitask import EndlessBatches, TaskSampler, build_task_sampler
from mtfsl.pipeline.prepare import PreparedTask, collator_for

Batch = dict[str, torch.Tensor]


@dataclass
class TrainBatches:
    """What the loop draws from: ``streams[task]`` gives the task's next batch (its position
    is part of a resumable state), ``task_sampler`` the task(s) of each step."""

    collator: PaddingCollator
    streams: dict[str, EndlessBatches]
    task_sampler: TaskSampler
    per_pass: dict[str, int]  # batches in one pass over each task's training split


def train_batches(
    tasks: dict[str, PreparedTask],
    cfg: TrainConfig,
    tokenizer: PreTrainedTokenizerBase,
    accelerator: Accelerator,
) -> TrainBatches:
    """Each task's batch sampler (seeded per task; under data parallelism each process takes
    its share of every global batch) and loader, as an endless stream on the device."""
    tc, hw = cfg.trainer, cfg.hardware
    collator = collator_for((t.kind for t in tasks.values()), tokenizer, hw)
    samplers = {
        name: LengthGroupedBatchSampler(
            task.train["length"],
            tc.batch_size,
            cfg.seed + i,
            tc.group_by_length,
            num_replicas=accelerator.num_processes,
            rank=accelerator.process_index,
        )
        for i, (name, task) in enumerate(tasks.items())
    }
    # Own generators: starting a pass must not draw from the global RNG (dropout), or a
    # resumed run would see different dropout masks than an uninterrupted one. The loaders
    # are not handed to accelerate: our batch samplers own the pass order and position
    # (accelerate's loader wrapper would reset the sampler epoch on every pass, which breaks
    # exact resumption).
    streams = {
        name: EndlessBatches(
            DataLoader(
                tasks[name].train,
                batch_sampler=sampler,
                collate_fn=collator,
                num_workers=hw.num_workers,
                generator=torch.Generator().manual_seed(cfg.seed),
            ),
            sampler,
            accelerator.device,
        )
        for name, sampler in samplers.items()
    }
    sizes = {n: len(t.train_split) for n, t in tasks.items()}
    task_sampler = build_task_sampler(cfg.task_sampling, sizes, cfg.seed)
    return TrainBatches(collator, streams, task_sampler, {n: len(s) for n, s in samplers.items()})


def support_batches(
    task: PreparedTask, collator: PaddingCollator, batch_size: int, device: Any
) -> Iterator[Batch]:
    """The task's training features in length-sorted batches (longest first) on ``device``,
    for a head that fits on them before each evaluation."""
    batches = sorted_batches(task.train["length"], batch_size)
    loader = DataLoader(task.train, batch_sampler=batches, collate_fn=collator)
    return ({k: v.to(device) for k, v in batch.items()} for batch in loader)
