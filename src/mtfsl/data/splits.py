"""Load a task's splits from disk into ``Split``s with validated labels and a label set."""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtfsl.config import DataConfig, DataFormat, LabelScheme, TaskConfig
from mtfsl.data.context import neighbour_context
from mtfsl.data.labels import bio_labels, entity_types, to_iob2
from mtfsl.data.readers import check_column, read_conll, read_csv
from mtfsl.errors import ConfigError, DataError

SPLITS = ("train", "dev", "test")

log = logging.getLogger(__name__)


@dataclass
class Split:
    """The examples of one split and where each came from.

    Token tasks: ``inputs`` are word lists and ``targets`` tag lists (IOB2 for chunk tasks).
    Sequence tasks: ``inputs`` are texts and ``targets`` one label each.
    """

    path: Path
    inputs: list[Any]
    targets: list[Any]
    lines: list[int]
    docs: list[int] = field(default_factory=list)
    # Token tasks with data.context > 0: per example, the words of neighbouring sentences of
    # its document (left, right), fed as unlabelled input (see data/context.py).
    context: list[tuple[list[str], list[str]]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def is_token_level(self) -> bool:
        return bool(self.targets) and isinstance(self.targets[0], list)

    @property
    def num_tokens(self) -> int:
        return sum(len(w) for w in self.inputs) if self.is_token_level else len(self.inputs)

    def subset(self, ids: list[int]) -> Split:
        def pick(values: list[Any]) -> list[Any]:
            return [values[i] for i in ids] if values else []

        return Split(
            self.path,
            pick(self.inputs),
            pick(self.targets),
            pick(self.lines),
            pick(self.docs),
            pick(self.context),
        )

    def labelled(self) -> Iterator[tuple[str, int]]:
        """Every label with its line number in the file."""
        for target, line in zip(self.targets, self.lines, strict=True):
            if isinstance(target, list):
                yield from ((tag, line + offset) for offset, tag in enumerate(target))
            else:
                yield target, line


@dataclass
class TaskData:
    name: str
    labels: list[str]
    splits: dict[str, Split]


def data_root(cfg: DataConfig) -> Path:
    if cfg.root is None:
        raise ConfigError(
            "data.root is not set: pass data.root=/path/to/data (a folder holding "
            "conll2003/train.txt, ...) or set the MTFSL_DATA_ROOT environment variable"
        )
    root = Path(os.path.expanduser(cfg.root))
    if not root.is_dir():
        raise ConfigError(f"data.root={cfg.root}: no such folder")
    return root


def _load_conll(path: Path, task: TaskConfig) -> Split:
    sentences = read_conll(path, task.doc_marker)
    check_column(path, sentences, task.token_column, "token")
    check_column(path, sentences, task.label_column, "label")
    lines = [s.line for s in sentences]
    tags = [s.column(task.label_column) for s in sentences]
    if task.label_scheme is not LabelScheme.NONE:
        tags = to_iob2(tags, task.label_scheme, str(path), lines)
    words = [s.column(task.token_column) for s in sentences]
    return Split(path, words, tags, lines, [s.doc for s in sentences])


def _load_csv(path: Path, task: TaskConfig) -> Split:
    records = read_csv(path, task.text_field, task.label_field)
    return Split(
        path, [r.text for r in records], [r.label for r in records], [r.line for r in records]
    )


_LOADERS: dict[DataFormat, Callable[[Path, TaskConfig], Split]] = {
    DataFormat.CONLL: _load_conll,
    DataFormat.CSV: _load_csv,
}


def _label_set(task: TaskConfig, train: Split, root: Path) -> list[str]:
    if task.labels:
        return list(task.labels)
    if task.labels_file:
        path = root / task.labels_file
        try:
            labels = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: cannot read a JSON label list ({err})") from None
        if not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
            raise DataError(f"{path}: expected a JSON list of label strings")
        return labels
    if train.is_token_level and task.label_scheme is not LabelScheme.NONE:
        return bio_labels(entity_types(train.targets))
    return sorted({label for label, _ in train.labelled()})


def check_known(split: Split, labels: list[str]) -> None:
    known = set(labels)
    for label, line in split.labelled():
        if label not in known:
            shown = labels if len(labels) <= 20 else [*labels[:20], "..."]
            raise DataError(
                f"{split.path}:{line}: label {label!r} is not in the label set {shown} "
                "(derived from the training file, task.labels or task.labels_file)"
            )


@functools.cache  # once per file: a prediction stream calls this for every chunk
def _warn_no_context(path: str, n: int, task: str, reason: str) -> None:
    log.warning("%s: data.context=%d not applied to task '%s' (%s)", path, n, task, reason)


def attach_context(split: Split, n: int, task: str) -> None:
    """Set ``split.context`` from its documents (``data.context=n``).

    Sequence tasks and files without document boundaries get none; that is logged, since a
    model trained with context then sees those sentences alone.
    """
    if n <= 0:
        return
    if not split.is_token_level or not split.docs:
        reason = "not a token task" if not split.is_token_level else "no document boundaries"
        _warn_no_context(str(split.path), n, task, reason)
        return
    split.context = neighbour_context(split.inputs, split.docs, n)


def _carve_dev(train: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    order = np.random.default_rng(seed).permutation(len(train))
    n_dev = max(1, round(fraction * len(train)))
    return train.subset(sorted(order[n_dev:].tolist())), train.subset(
        sorted(order[:n_dev].tolist())
    )


def load_task(name: str, task: TaskConfig, data: DataConfig) -> TaskData:
    """Read every configured split of ``task``; labels come from config, a file, or train.

    Raises:
        ConfigError: data root unset or missing.
        DataError: a split file is missing or malformed, or holds labels outside the label set.
    """
    root = data_root(data)
    splits: dict[str, Split] = {}
    for split in SPLITS:
        relative = getattr(task.files, split)
        if relative is None:
            continue
        path = root / os.path.expanduser(relative)
        if not path.is_file():
            raise DataError(
                f"{path}: {split} split of task '{name}' not found "
                f"(task.{name}.files.{split}={relative}, data.root={root})"
            )
        splits[split] = _LOADERS[task.format](path, task)
        attach_context(splits[split], data.context, name)
    if task.dev_fraction:
        splits["train"], splits["dev"] = _carve_dev(
            splits["train"], task.dev_fraction, task.dev_seed
        )
    labels = _label_set(task, splits["train"], root)
    for split in splits.values():
        check_known(split, labels)
    return TaskData(name, labels, splits)
