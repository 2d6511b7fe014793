"""Load a task's splits from disk into ``TaggedSplit``s with validated IOB2 tags."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mtfsl.config import DataConfig, DataFormat, TaskConfig
from mtfsl.data.labels import bio_labels, entity_types, to_iob2
from mtfsl.data.readers import Sentence, check_column, read_conll
from mtfsl.errors import ConfigError, DataError

SPLITS = ("train", "dev", "test")


@dataclass
class TaggedSplit:
    """Words and IOB2 tags of one split, plus where each sentence came from."""

    path: Path
    words: list[list[str]]
    tags: list[list[str]]
    lines: list[int]
    docs: list[int]

    def __len__(self) -> int:
        return len(self.words)

    @property
    def num_tokens(self) -> int:
        return sum(len(w) for w in self.words)

    def subset(self, ids: list[int]) -> TaggedSplit:
        pick = [self.words[i] for i in ids], [self.tags[i] for i in ids]
        return TaggedSplit(
            self.path, pick[0], pick[1], [self.lines[i] for i in ids], [self.docs[i] for i in ids]
        )


@dataclass
class TaskData:
    name: str
    labels: list[str]
    splits: dict[str, TaggedSplit]


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


def _read_split(path: Path, task: TaskConfig) -> TaggedSplit:
    sentences: list[Sentence] = _READERS[task.format](path, task.doc_marker)
    check_column(path, sentences, task.token_column, "token")
    check_column(path, sentences, task.label_column, "label")
    lines = [s.line for s in sentences]
    tags = to_iob2(
        [s.column(task.label_column) for s in sentences], task.label_scheme, str(path), lines
    )
    words = [s.column(task.token_column) for s in sentences]
    return TaggedSplit(path, words, tags, lines, [s.doc for s in sentences])


_READERS = {DataFormat.CONLL: read_conll}


def _check_known(split: TaggedSplit, labels: list[str]) -> None:
    known = set(labels)
    for tags, line in zip(split.tags, split.lines, strict=True):
        for offset, tag in enumerate(tags):
            if tag not in known:
                raise DataError(
                    f"{split.path}:{line + offset}: tag {tag!r} is not in the label set "
                    f"{labels} (derived from the training file or task.labels)"
                )


def load_task(task: TaskConfig, data: DataConfig) -> TaskData:
    """Read every configured split of ``task``; labels come from ``task.labels`` or train.

    Raises:
        ConfigError: data root unset or missing.
        DataError: a split file is missing or malformed, or holds tags outside the label set.
    """
    root = data_root(data)
    splits: dict[str, TaggedSplit] = {}
    for name in SPLITS:
        relative = getattr(task.files, name)
        if relative is None:
            continue
        path = root / os.path.expanduser(relative)
        if not path.is_file():
            raise DataError(
                f"{path}: {name} split of task '{task.name}' not found "
                f"(task.files.{name}={relative}, data.root={root})"
            )
        splits[name] = _read_split(path, task)
    labels = task.labels or bio_labels(entity_types(splits["train"].tags))
    for split in splits.values():
        _check_known(split, labels)
    return TaskData(task.name, labels, splits)
