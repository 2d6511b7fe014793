"""Load a task's splits through its reader and its kind into ``Split``s with validated labels
and a label set."""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mtfsl.config import DataConfig, TaskConfig
from mtfsl.errors import ConfigError, DataError

if TYPE_CHECKING:
    from mtfsl.resolve import Task

SPLITS = ("train", "dev", "test")

log = logging.getLogger(__name__)


@dataclass
class Split:
    """The examples of one split and where each came from.

    ``inputs`` and ``targets`` are what the task's kind makes of a reader's records (tagging:
    word lists and tag lists; classification: texts and one label each). ``lines`` locate each
    example: a 1-based line of ``path``, or a row index of a dataset split (``rows``).
    """

    path: Path | str
    inputs: list[Any]
    targets: list[Any]
    lines: list[int]
    docs: list[int] = field(default_factory=list)
    # Token tasks with data.context > 0: per example, the words of neighbouring sentences of
    # its document (left, right), fed as unlabelled input (see data/context.py).
    context: list[tuple[list[str], list[str]]] = field(default_factory=list)
    # True when each token of an example is on a line of its own (CoNLL columns), so token i
    # of an example starting at line L is at line L + i.
    token_lines: bool = False
    rows: bool = False  # lines are row indices of a dataset split: "name[split][row]"

    def __len__(self) -> int:
        return len(self.inputs)

    def at(self, index: int, token: int | None = None) -> str:
        """Where example ``index`` (and its token ``token``) is, as an error message says it."""
        line = self.lines[index]
        if self.rows:
            place = f"{self.path}[{line}]"
        elif token is not None and self.token_lines:
            return f"{self.path}:{line + token}"
        else:
            place = f"{self.path}:{line}"
        return place if token is None else f"{place} (token {token + 1})"

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
            self.token_lines,
            self.rows,
        )

    def extended(self, inputs: list[Any], targets: list[Any], sources: list[int]) -> Split:
        """This split followed by new examples, each located (and given the document and
        context) of the example ``sources[i]`` it was made from."""
        extra = self.subset(sources)
        return Split(
            self.path,
            self.inputs + inputs,
            self.targets + targets,
            self.lines + extra.lines,
            self.docs + extra.docs,
            self.context + extra.context,
            self.token_lines,
            self.rows,
        )


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


def data_path(relative: str, cfg: DataConfig) -> Path:
    """A task file: absolute as given, else relative to ``data.root`` (which must be set)."""
    path = Path(relative).expanduser()
    return path if path.is_absolute() else data_root(cfg) / path


def _label_set(kind: Any, task: TaskConfig, train: Split, data: DataConfig) -> list[str]:
    if task.labels:
        return list(task.labels)
    if task.labels_file:
        path = data_path(task.labels_file, data)
        try:
            labels = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: cannot read a JSON label list ({err})") from None
        if not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
            raise DataError(f"{path}: expected a JSON list of label strings")
        return labels
    return kind.derive_labels(task, train)


def check_known(kind: Any, split: Split, labels: list[str]) -> None:
    known = set(labels)
    for label, index, token in kind.labelled(split):
        if label not in known:
            where = split.at(index, token)  # formatted only for the error, not every token
            shown = labels if len(labels) <= 20 else [*labels[:20], "..."]
            raise DataError(
                f"{where}: label {label!r} is not in the label set {shown} "
                "(derived from the training split, the task's labels or labels_file)"
            )


@functools.cache  # once per file: a prediction stream calls this for every chunk
def warn_no_context(path: str, n: int, task: str, reason: str) -> None:
    log.warning("%s: data.context=%d not applied to task '%s' (%s)", path, n, task, reason)


def _carve_dev(train: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    order = np.random.default_rng(seed).permutation(len(train))
    n_dev = max(1, round(fraction * len(train)))
    return train.subset(sorted(order[n_dev:].tolist())), train.subset(
        sorted(order[:n_dev].tolist())
    )


def load_task(resolved: Task, data: DataConfig) -> TaskData:
    """Read every split of a task with its reader; labels come from config, a file, or train.

    Raises:
        ConfigError: data root unset or missing.
        DataError: a split is missing or malformed, or holds labels outside the label set.
    """
    name, task, kind, reader = resolved.name, resolved.cfg, resolved.kind, resolved.reader
    splits: dict[str, Split] = {}
    for split, records in reader.read_splits(name, task, kind, data):
        splits[split] = kind.to_split(records, task)
        kind.attach_context(splits[split], data.context, name)
    if "train" not in splits:
        raise ConfigError(f"task.{name}.files.train: the task has no training split")
    if task.dev_fraction:
        splits["train"], splits["dev"] = _carve_dev(
            splits["train"], task.dev_fraction, task.dev_seed
        )
    labels = _label_set(kind, task, splits["train"], data)
    for split in splits.values():
        check_known(kind, split, labels)
    return TaskData(name, labels, splits)
