"""Turn a task's loaded splits into model features through its kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import datasets
from transformers import PreTrainedTokenizerBase

from mtfsl.config import TaskConfig, TrainConfig
from mtfsl.data.splits import Split, TaskData
from mtfsl.kinds import get_kind
from mtfsl.kinds.base import TaskKind


@dataclass
class EvalSet:
    """What evaluation needs: the features, and the examples and gold labels to score."""

    features: datasets.Dataset
    split: Split


@dataclass
class PreparedTask:
    name: str
    cfg: Any  # the task's TaskConfig subclass (its kind's schema)
    labels: list[str]
    train: datasets.Dataset
    train_split: Split
    evals: dict[str, EvalSet]

    @property
    def kind(self) -> TaskKind:
        return get_kind(self.cfg.kind)


def split_features(
    split: Split,
    task: TaskConfig,
    name: str,
    labels: list[str],
    tokenizer: PreTrainedTokenizerBase,
    cfg: TrainConfig,
    cache: bool = True,
) -> datasets.Dataset:
    """Model features of one split (cached by content and tokenizer in ``data.cache_dir``;
    ``cache=False`` keeps them in memory only, e.g. for chunks of a prediction stream)."""
    cache_dir = cfg.data.cache_dir if cache else None
    kind = get_kind(task.kind)
    return kind.features(split, task, name, labels, tokenizer, cfg.model, cache_dir)


def prepare_task(
    data: TaskData, cfg: TrainConfig, tokenizer: PreTrainedTokenizerBase
) -> PreparedTask:
    """Featurise every split (cached by content and tokenizer)."""
    task = cfg.task[data.name]

    def features(split: Split) -> datasets.Dataset:
        return split_features(split, task, data.name, data.labels, tokenizer, cfg)

    train_split = data.splits["train"]
    evals = {name: EvalSet(features(s), s) for name, s in data.splits.items() if name != "train"}
    return PreparedTask(data.name, task, data.labels, features(train_split), train_split, evals)
