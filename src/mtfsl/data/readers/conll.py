"""CoNLL columns: one token per line, columns separated by spaces or tabs, a blank (or
whitespace-only) line between sentences, ``-DOCSTART-`` lines between documents."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtfsl.config import ReaderConfig
from mtfsl.data.readers import register_reader
from mtfsl.data.readers.base import Column, Columns, Reader, Record, as_index
from mtfsl.data.readers.text import iter_conll
from mtfsl.errors import ConfigError, DataError


@dataclass
class ConllReaderConfig(ReaderConfig):
    format: str = "conll"
    # Lines whose first field is this marker start a new document and are not sentences.
    doc_marker: str = "-DOCSTART-"


def column_index(column: Column, position: int, n_roles: int) -> int:
    """A role's column index: as configured, else the first role is column 0 and the last
    the last column (token ... tag)."""
    if column.value is None:
        return 0 if position == 0 else -1 if position == n_roles - 1 else position
    index = as_index(column.value)
    if index is None:
        raise ConfigError(
            f"{column.key}={column.value}: the conll reader takes column indices (0, 1, -1)"
        )
    return index


class ConllReader(Reader):
    name = "conll"
    schema = ConllReaderConfig
    token_level_only = True

    token_lines = True

    def iter_records(
        self, path: Path, cfg: Any, columns: Columns, optional: frozenset[str] = frozenset()
    ) -> Iterator[Record]:
        index = {
            role: column_index(c, i, len(columns)) for i, (role, c) in enumerate(columns.items())
        }
        for sentence in iter_conll(path, cfg.doc_marker):
            width = len(sentence.fields[0])
            values = {}
            for role, i in index.items():
                in_range = -width <= i < width
                if role in optional and (width == 1 or not in_range):
                    continue  # an unlabelled file: just the tokens
                if not in_range:
                    raise DataError(
                        f"{path}:{sentence.line}: {columns[role].key}={i} but the file has "
                        f"{width} columns"
                    )
                values[role] = sentence.column(i)
            yield Record(values, sentence.line, sentence.doc)


register_reader(ConllReader())
