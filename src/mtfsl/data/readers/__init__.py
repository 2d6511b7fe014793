"""Registry of readers (storage formats): every module of this package registers its readers,
and installed packages may add more through the ``mtfsl.readers`` entry-point group.

The plain-file helpers of the CoNLL and CSV readers are re-exported for scripts and tests.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points
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


def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name not in ("base", "text"):
            importlib.import_module(f"{__name__}.{module.name}")
    for entry in entry_points(group="mtfsl.readers"):
        entry.load()


_discover()
