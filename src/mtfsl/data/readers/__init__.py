"""Registry of readers (storage formats): every module of this package registers its readers,
and installed packages may add more through the ``mtfsl.readers`` entry-point group.

The plain-file helpers of the CoNLL and CSV readers are re-exported for scripts and tests.
"""

from __future__ import annotations

from typing import Any

from mtfsl.data.readers.base import Reader
from mtfsl.data.readers.text import (
    Sentence,
    TaggedLine,
    check_column,
    iter_conll,
    read_conll,
    read_line_pairs,
    text_lines,
)
from mtfsl.errors import ConfigError
from mtfsl.plugins import discover

READERS: dict[str, Reader] = {}

__all__ = [
    "READERS",
    "Reader",
    "Sentence",
    "TaggedLine",
    "check_column",
    "get_reader",
    "iter_conll",
    "read_conll",
    "read_line_pairs",
    "register_reader",
    "text_lines",
]


def register_reader(reader: Reader) -> Reader:
    """Make ``reader`` available as ``task.NAME.reader.format: FORMAT``."""
    READERS[reader.name] = reader
    return reader


def get_reader(name: Any, key: str = "task.reader.format") -> Reader:
    if name not in READERS:
        raise ConfigError(f"{key}={name}: expected a reader format, one of {sorted(READERS)}")
    return READERS[name]


discover(__name__, __path__, "mtfsl.readers", skip=("base", "text"))
