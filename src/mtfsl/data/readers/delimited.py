"""Delimited text: CSV and TSV, a row per example, columns by header name or index."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from mtfsl.config import ReaderConfig
from mtfsl.data.readers import register_reader
from mtfsl.data.readers.base import Columns, Reader, Record, as_index
from mtfsl.data.readers.text import stream
from mtfsl.errors import ConfigError, DataError


class Quoting(Enum):
    """How quote characters are read."""

    MINIMAL = "minimal"  # "..." fields may hold delimiters and newlines (csv's default)
    NONE = "none"  # quotes are ordinary characters (GLUE's TSV files need this)


@dataclass
class CsvReaderConfig(ReaderConfig):
    format: str = "csv"
    delimiter: str = ","
    quoting: Quoting = Quoting.MINIMAL
    # The first row names the columns; without one, columns are indices.
    header: bool = True


@dataclass
class TsvReaderConfig(CsvReaderConfig):
    format: str = "tsv"
    delimiter: str = "\t"
    quoting: Quoting = Quoting.NONE


def _check_unbalanced(
    path: Path, line: int, fields: list[str], delimiter: str, width: int | None
) -> None:
    """A quoted field that runs over lines which look like rows of their own (as many
    delimiters as a row has) is an unbalanced quote that merged those rows into one: an
    error, not one example with the next rows' text."""
    if width is None or width < 2:
        return
    for value in fields:
        rows = [x for x in value.split("\n")[1:] if x.count(delimiter) == width - 1]
        if rows:
            raise DataError(
                f"{path}:{line}: a quoted field runs over {value.count(chr(10))} more lines, "
                f"{len(rows)} of which look like rows of their own (an unbalanced quote?); "
                "fix the quote, or read the file with reader.quoting=NONE"
            )


class DelimitedReader(Reader):
    """Rows of fields; each role's column is a header name or a 0-based index, by default
    the kind's own field name (e.g. ``text`` and ``label``)."""

    def __init__(self, name: str, schema: type[CsvReaderConfig]) -> None:
        self.name = name
        self.schema = schema

    def validate(self, key: str, cfg: Any, kind: Any, task: Any) -> None:
        super().validate(key, cfg, kind, task)
        if len(cfg.delimiter) != 1:
            raise ConfigError(f"{key}.reader.delimiter={cfg.delimiter!r}: expected 1 character")
        for role, column in kind.columns(key, task).items():
            if not cfg.header and as_index(column.value) is None:
                raise ConfigError(
                    f"{column.key}={column.value}: a file without a header row "
                    f"({key}.reader.header=false) needs a column index for {role}"
                )

    def _positions(
        self, path: Path, header: list[str] | None, columns: Columns, optional: frozenset[str]
    ) -> dict[str, int]:
        out = {}
        for role, column in columns.items():
            index = as_index(column.value)
            if index is None and header is not None:
                if column.name not in header:
                    if role in optional:
                        continue
                    raise DataError(
                        f"{path}:1: no column {column.name!r} ({column.key}) in the header {header}"
                    )
                index = header.index(column.name)
            if index is not None:
                out[role] = index
        return out

    def iter_records(
        self, path: Path, cfg: Any, columns: Columns, optional: frozenset[str] = frozenset()
    ) -> Iterator[Record]:
        quoting = csv.QUOTE_NONE if cfg.quoting is Quoting.NONE else csv.QUOTE_MINIMAL
        reader = csv.reader(stream(path), delimiter=cfg.delimiter, quoting=quoting, strict=True)
        found = False
        try:
            header = next(reader, None) if cfg.header else None
            if cfg.header and header is None:
                raise DataError(f"{path}: empty file (expected a header row)")
            positions = self._positions(path, header, columns, optional)
            width = len(header) if header is not None else None
            line = reader.line_num + 1
            for fields in reader:
                if not fields or (len(fields) == 1 and not fields[0].strip()):
                    line = reader.line_num + 1
                    continue  # a blank line
                if width is not None and len(fields) != width:
                    raise DataError(
                        f"{path}:{line}: expected {width} fields like the header, found "
                        f"{len(fields)}"
                    )
                if cfg.quoting is Quoting.MINIMAL:
                    _check_unbalanced(path, line, fields, cfg.delimiter, width)
                values = {}
                for role, index in positions.items():
                    if not -len(fields) <= index < len(fields):
                        if role in optional:
                            continue  # an unlabelled file
                        raise DataError(
                            f"{path}:{line}: {columns[role].key}={index} but the row has "
                            f"{len(fields)} fields"
                        )
                    values[role] = fields[index]
                found = True
                yield Record(values, line)
                line = reader.line_num + 1
        except csv.Error as err:
            hint = "; an unclosed quote?" if "end of data" in str(err) else ""
            raise DataError(
                f"{path}:{reader.line_num}: malformed {self.name} ({err}{hint})"
            ) from None
        if not found:
            raise DataError(f"{path}: no rows found" + (" below the header" if cfg.header else ""))


register_reader(DelimitedReader("csv", CsvReaderConfig))
register_reader(DelimitedReader("tsv", TsvReaderConfig))
