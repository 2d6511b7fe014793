"""CoNLL columns read as texts with a set of labels: each sentence's words joined by spaces,
and the entity types its tags mention (``B-PER``, ``I-PER`` and IOB1's ``I-PER`` all say
PER; ``O`` says nothing, so a sentence without entities has the empty set). It turns an NER
corpus into a multi-label task ("which types does this sentence mention?") without copying
or converting its files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtfsl.data.labels import entity_types
from mtfsl.data.readers import register_reader
from mtfsl.data.readers.base import Columns, Reader, Record
from mtfsl.data.readers.conll import ConllReaderConfig, column_index
from mtfsl.data.readers.text import iter_conll
from mtfsl.errors import ConfigError, DataError


@dataclass
class ConllTypesReaderConfig(ConllReaderConfig):
    format: str = "conll_types"


class ConllTypesReader(Reader):
    """Asked for two roles, a text and its labels: the token column (default the first) and
    the tag column (default the last) of a CoNLL file."""

    name = "conll_types"
    schema = ConllTypesReaderConfig

    def iter_records(
        self, path: Path, cfg: Any, columns: Columns, optional: frozenset[str] = frozenset()
    ) -> Iterator[Record]:
        if len(columns) != 2:
            raise ConfigError(f"reader conll_types gives a text and its labels: {list(columns)}")
        (text_role, text), (label_role, label) = columns.items()
        # the CoNLL reader's columns: the first role's default is column 0, the last's -1
        tokens, tags = column_index(text, 0, 2), column_index(label, 1, 2)
        for sentence in iter_conll(path, cfg.doc_marker):
            width = len(sentence.fields[0])
            values: dict[str, Any] = {text_role: " ".join(sentence.column(tokens))}
            if -width <= tags < width and width > 1:
                values[label_role] = entity_types([sentence.column(tags)])
            elif label_role not in optional:
                raise DataError(
                    f"{path}:{sentence.line}: {label.key}={tags} but the file has {width} columns"
                )
            yield Record(values, sentence.line, sentence.doc)


register_reader(ConllTypesReader())
