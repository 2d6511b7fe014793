"""Turn a task's loaded splits into model features: label ids and windows."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import datasets
from transformers import PreTrainedTokenizerBase

from mtfsl.config import HeadKind, TaskConfig, TrainConfig
from mtfsl.data.features import featurize
from mtfsl.data.splits import Split, TaskData
from mtfsl.errors import DataError
from mtfsl.model.prompt import fill_template

log = logging.getLogger(__name__)


@dataclass
class EvalSet:
    """What evaluation needs: the features, and the words and gold tags to score against."""

    features: datasets.Dataset
    split: Split


@dataclass
class PreparedTask:
    name: str
    cfg: TaskConfig
    labels: list[str]
    train: datasets.Dataset
    train_split: Split
    evals: dict[str, EvalSet]


def check_one_mask(feats: datasets.Dataset, split: Split, mask_id: int, task: str) -> None:
    """Every prompt row must keep its mask slot (truncation could cut it away)."""
    for row, ids in enumerate(feats["input_ids"]):
        if ids.count(mask_id) != 1:
            raise DataError(
                f"{split.path}:{split.lines[row]}: the prompt of task '{task}' has "
                f"{ids.count(mask_id)} mask tokens after tokenisation (expected 1): the text "
                "was truncated past the mask or contains one; raise model.max_length or put "
                "{mask} before {text} in the template"
            )


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
    label_id = {label: i for i, label in enumerate(labels)}
    ids = [
        [label_id[t] for t in target] if isinstance(target, list) else label_id[target]
        for target in split.targets
    ]
    inputs = split.inputs
    if task.head is HeadKind.PROMPT:
        inputs = fill_template(task.prompt, inputs, tokenizer.mask_token)
    feats = featurize(
        inputs,
        ids,
        tokenizer,
        cfg.model.max_length,
        cfg.model.stride,
        cfg.data.cache_dir if cache else None,
        split.context,
    )
    if task.head is HeadKind.PROMPT:
        check_one_mask(feats, split, tokenizer.mask_token_id, name)
    if "truncated" in feats.column_names and (n := sum(feats["truncated"])):
        log.warning(
            "%s: %d of %d texts are longer than model.max_length=%d and were "
            "truncated (labels kept)",
            split.path,
            n,
            len(split),
            cfg.model.max_length,
        )
    return feats


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
