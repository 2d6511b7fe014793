"""The reader protocol: a task's split files (or dataset splits) in, ``Records`` out.

A reader knows a storage format, not a task kind: it is asked for *roles* (the kind's fields,
e.g. tokens and tags) at configured columns, and returns each example's values with its
place (``file:line`` or ``dataset[split][row]``) for error messages. The task's kind then
checks the values and turns them into examples.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mtfsl.config import DataConfig, ReaderConfig, TaskConfig
from mtfsl.errors import ConfigError, DataError

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Column:
    """Where a reader finds one role (a field the kind needs, e.g. ``tags``)."""

    key: str  # the task's config key that sets it, for messages (task.conll.label_column)
    value: str | None  # as configured: a name or an index; None = the reader's default
    default: str  # the field name that readers of named fields use by default

    @property
    def name(self) -> str:
        return self.value if self.value is not None else self.default


Columns = dict[str, Column]  # role -> where it is


@dataclass(frozen=True)
class Record:
    """One example as read: role -> value, its 1-based line (or row index), its document."""

    values: dict[str, Any]
    line: int
    doc: int | None = None


@dataclass
class Records:
    """The records of one split and how to name their places."""

    path: Path | str
    rows: list[Record]
    token_lines: bool = False  # one token per line (CoNLL): token i is at line + i
    by_row: bool = False  # ``line`` is a row index of a dataset split
    # role -> label names, for integer-valued labels (a dataset's ClassLabel feature)
    names: dict[str, list[str]] = field(default_factory=dict)

    def at(self, record: Record) -> str:
        return f"{self.path}[{record.line}]" if self.by_row else f"{self.path}:{record.line}"


def as_index(column: str | None) -> int | None:
    """``column`` as an integer index, or None when it is a name."""
    if column is None:
        return None
    try:
        return int(column)
    except ValueError:
        return None


class Reader:
    """One storage format. Subclasses set ``name`` and ``schema`` and implement ``read``."""

    name: ClassVar[str]
    schema: ClassVar[type[ReaderConfig]]
    # Whether the reader gives word sequences (one token per line) rather than fields.
    token_level_only: ClassVar[bool] = False

    def validate(self, key: str, cfg: Any, kind: Any, task: TaskConfig) -> None:
        """Checks of the reader's keys against the task (raise ConfigError naming the key)."""
        if self.token_level_only and not kind.token_level:
            raise ConfigError(
                f"{key}.reader.format={self.name}: reads one token per line, but kind "
                f"{kind.name} has no per-token labels; use csv, tsv, jsonl or datasets"
            )
        if self.needs_files(cfg) and task.files.train is None:
            raise ConfigError(f"{key}.files.train: missing (the {self.name} reader needs a file)")

    def needs_files(self, cfg: Any) -> bool:
        return True

    # one token per line (CoNLL): token i of a record at line L is at line L + i
    token_lines: ClassVar[bool] = False

    def iter_records(
        self, path: Path, cfg: Any, columns: Columns, optional: frozenset[str] = frozenset()
    ) -> Iterator[Record]:
        """The records of one file, read lazily (a stream of any size); roles in
        ``optional`` may be absent (unlabelled input, e.g. for mtfsl-predict). Raises a
        DataError naming ``file:line`` for malformed input and for a file with no records."""
        raise NotImplementedError

    def read(self, path: Path, cfg: Any, columns: Columns) -> Records:
        """All records of one file."""
        return Records(path, list(self.iter_records(path, cfg, columns)), self.token_lines)

    def read_splits(
        self, name: str, task: TaskConfig, kind: Any, data: DataConfig
    ) -> Iterator[tuple[str, Records]]:
        """(split, records) for every configured split of the task."""
        from mtfsl.data.splits import data_path

        for split in SPLITS:
            relative = getattr(task.files, split)
            if relative is None:
                continue
            path = data_path(relative, data)
            if not path.is_file():
                raise DataError(
                    f"{path}: {split} split of task '{name}' not found "
                    f"(task.{name}.files.{split}={relative}, data.root={data.root})"
                )
            yield split, self.read(path, task.reader, kind.columns(f"task.{name}", task))
