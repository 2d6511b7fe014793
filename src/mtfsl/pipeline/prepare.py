"""Turn a task's loaded splits into model features through its kind."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import datasets
from transformers import PreTrainedTokenizerBase

from mtfsl.config import HardwareConfig, TrainConfig
from mtfsl.data.batching import PaddingCollator, merged_pad_values
from mtfsl.data.splits import Split, TaskData
from mtfsl.kinds.protocols import Kind
from mtfsl.resolve import Task


@dataclass
class EvalSet:
    """What evaluation needs: the features, and the examples and gold labels to score."""

    features: datasets.Dataset
    split: Split


@dataclass
class PreparedTask:
    """A resolved task with its label set and the features of every split."""

    task: Task
    labels: list[str]
    train: datasets.Dataset
    train_split: Split
    evals: dict[str, EvalSet]

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def cfg(self) -> Any:  # the task's TaskConfig subclass (its kind's schema)
        return self.task.cfg

    @property
    def kind(self) -> Kind:
        return self.task.kind


def split_features(
    split: Split,
    task: Task,
    labels: list[str],
    tokenizer: PreTrainedTokenizerBase,
    cfg: TrainConfig,
    cache: bool = True,
) -> datasets.Dataset:
    """Model features of one split (cached by content and tokenizer in ``data.cache_dir``;
    ``cache=False`` keeps them in memory only, e.g. for chunks of a prediction stream)."""
    cache_dir = cfg.data.cache_dir if cache else None
    return task.kind.features(split, task.cfg, task.name, labels, tokenizer, cfg.model, cache_dir)


def prepare_task(
    task: Task, data: TaskData, cfg: TrainConfig, tokenizer: PreTrainedTokenizerBase
) -> PreparedTask:
    """Featurise every split (cached by content and tokenizer)."""

    def features(split: Split) -> datasets.Dataset:
        return split_features(split, task, data.labels, tokenizer, cfg)

    train_split = data.splits["train"]
    evals = {name: EvalSet(features(s), s) for name, s in data.splits.items() if name != "train"}
    return PreparedTask(task, data.labels, features(train_split), train_split, evals)


def collator_for(
    kinds: Iterable[Kind], tokenizer: PreTrainedTokenizerBase, hardware: HardwareConfig
) -> PaddingCollator:
    """The padding collator of batches of these kinds' features: each column padded with the
    value its kind declares."""
    kinds = list(kinds)
    return PaddingCollator(
        tokenizer.pad_token_id,
        hardware.pad_to_multiple_of,
        merged_pad_values(k.pad_values for k in kinds),
        merged_pad_values(k.ragged_pad_values for k in kinds),
    )
