"""JSON lines: an object per line (the Hugging Face examples' ``.json`` layout, e.g. run_ner's
``{"tokens": [...], "ner_tags": [...]}``), fields by name; a dotted name reaches into nested
objects (``meta.label``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from sys import intern
from typing import Any

from mtfsl.config import ReaderConfig
from mtfsl.data.readers import register_reader
from mtfsl.data.readers.base import Columns, Reader, Record
from mtfsl.data.readers.text import text_lines
from mtfsl.errors import DataError

_MISSING = object()


@dataclass
class JsonlReaderConfig(ReaderConfig):
    format: str = "jsonl"


def field_value(obj: Any, name: str) -> Any:
    """``obj[name]``, following dots into nested objects; _MISSING when absent."""
    for part in name.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


def role_values(obj: dict, columns: Columns, optional: frozenset[str], where: str) -> dict:
    """Per role, its column's value in ``obj`` (dotted names reach into nested objects); a
    missing field is an error naming ``where`` and the config key, unless it is optional."""
    values = {}
    for role, column in columns.items():
        value = field_value(obj, column.name)
        if value is _MISSING:
            if role in optional:
                continue
            raise DataError(
                f"{where}: no field {column.name!r} ({column.key}); the object has "
                f"{sorted(obj)[:10]}"
            )
        values[role] = value
    return values


def _interned(value: Any) -> Any:
    """A list of strings (words, tags) with its strings interned: a corpus repeats them, one
    object each saves memory (200k sentences: scripts/bench_jsonl_memory.py)."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [intern(v) for v in value]
    return value


class JsonlReader(Reader):
    name = "jsonl"
    schema = JsonlReaderConfig

    def iter_records(
        self, path: Path, cfg: Any, columns: Columns, optional: frozenset[str] = frozenset()
    ) -> Iterator[Record]:
        found = False
        # newlines only: JSON strings may hold U+2028 and other line breaks
        for number, line in enumerate(text_lines(path, newlines_only=True), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{number}: not a JSON object ({err.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(
                    f"{path}:{number}: expected a JSON object, found {type(obj).__name__}"
                )
            values = {
                role: _interned(v)
                for role, v in role_values(obj, columns, optional, f"{path}:{number}").items()
            }
            found = True
            yield Record(values, number)
        if not found:
            raise DataError(f"{path}: no JSON objects found")


register_reader(JsonlReader())
