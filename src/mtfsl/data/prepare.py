"""Turn a task's loaded splits into model features: label ids, K-shot subset, windows."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import datasets
from transformers import PreTrainedTokenizerBase

from mtfsl.config import MetricKind, TaskConfig, TrainConfig
from mtfsl.data.features import featurize
from mtfsl.data.kshot import mention_counts, sample_k_shot, save_ids
from mtfsl.data.splits import Split, TaskData
from mtfsl.errors import ConfigError

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


def _few_shot(data: TaskData, cfg: TrainConfig, run_dir: Path | None) -> Split:
    train = data.splits["train"]
    if cfg.few_shot.k is None:
        return train
    if cfg.task[data.name].metric is not MetricKind.ENTITY:
        raise ConfigError(
            f"few_shot.k={cfg.few_shot.k}: sampler {cfg.few_shot.sampler.name} needs an "
            f"entity-tagged task, but task '{data.name}' has metric "
            f"{cfg.task[data.name].metric.name}"
        )
    ids = sample_k_shot(train.targets, cfg.few_shot, cfg.seed)
    subset = train.subset(ids)
    counts: dict[str, int] = {}
    for tags in subset.targets:
        for kind, n in mention_counts(tags).items():
            counts[kind] = counts.get(kind, 0) + n
    seed = cfg.seed if cfg.few_shot.seed is None else cfg.few_shot.seed
    if run_dir is not None:
        save_ids(
            run_dir / "few_shot" / f"{data.name}_train_ids.json",
            ids,
            train.lines,
            cfg.few_shot,
            seed,
            train.path,
            dict(sorted(counts.items())),
        )
    log.info(
        "few-shot k=%d (%s): %d of %d training sentences; mentions per type %s",
        cfg.few_shot.k,
        cfg.few_shot.sampler.value,
        len(ids),
        len(train),
        counts,
    )
    return subset


def prepare_task(
    data: TaskData,
    cfg: TrainConfig,
    tokenizer: PreTrainedTokenizerBase,
    run_dir: Path,
    write: bool = True,
) -> PreparedTask:
    """Sample the K-shot subset (if asked) and featurise every split (cached).

    ``write``: save the K-shot ids into ``run_dir`` (only the main process does).
    """
    label_id = {label: i for i, label in enumerate(data.labels)}
    train_split = _few_shot(data, cfg, run_dir if write else None)

    def features(split: Split) -> datasets.Dataset:
        ids = [
            [label_id[t] for t in target] if isinstance(target, list) else label_id[target]
            for target in split.targets
        ]
        feats = featurize(
            split.inputs, ids, tokenizer, cfg.model.max_length, cfg.model.stride, cfg.data.cache_dir
        )
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

    evals = {name: EvalSet(features(s), s) for name, s in data.splits.items() if name != "train"}
    return PreparedTask(
        data.name, cfg.task[data.name], data.labels, features(train_split), train_split, evals
    )
