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
from mtfsl.plugins import Registry, discover

READERS: Registry[Reader] = Registry("a reader format")
# Make a reader available as ``task.NAME.reader.format: FORMAT``.
register_reader = READERS.add

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


def get_reader(name: Any, key: str = "task.reader.format") -> Reader:
    return READERS.named(name, key)


discover(__name__, __path__, "mtfsl.readers", skip=("base", "text"))
