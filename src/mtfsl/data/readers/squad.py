"""SQuAD JSON (v1.1 and v2.0 layout): ``data[].paragraphs[].{context, qas[]}``, a record per
question with its id, question, context and reference answers (columns name a question's
fields, dotted for nested ones, as in JSON lines). Places are question numbers in file order
(``train.json[12]``) and the question's id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtfsl.config import ReaderConfig
from mtfsl.data.readers import register_reader
from mtfsl.data.readers.base import Columns, Reader, Record, Records
from mtfsl.data.readers.jsonl import role_values
from mtfsl.errors import DataError


@dataclass
class SquadReaderConfig(ReaderConfig):
    format: str = "squad"


def _list(obj: Any, key: str, where: str) -> list[Any]:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, list):
        raise DataError(f"{where}: expected a list under {key!r} (the SQuAD JSON layout)")
    return value


def squad_questions(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(number, {id, question, context, answers}) for every question of a SQuAD file."""
    try:
        root = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    number = 0
    for a, article in enumerate(_list(root, "data", str(path))):
        for p, paragraph in enumerate(_list(article, "paragraphs", f"{path} data[{a}]")):
            where = f"{path} data[{a}].paragraphs[{p}]"
            context = paragraph.get("context") if isinstance(paragraph, dict) else None
            for question in _list(paragraph, "qas", where):
                number += 1
                if not isinstance(question, dict):
                    raise DataError(f"{path}[{number}]: expected a question object")
                yield number, {**question, "context": context}


class SquadReader(Reader):
    name = "squad"
    schema = SquadReaderConfig

    def iter_records(
        self, path: Path, cfg: Any, columns: Columns, optional: frozenset[str] = frozenset()
    ) -> Iterator[Record]:
        found = False
        for number, question in squad_questions(path):
            where = f"{path}[{number}] (question {question.get('id', '?')})"
            values = role_values(question, columns, optional, where)
            found = True
            yield Record(values, number)
        if not found:
            raise DataError(f"{path}: no questions found (data[].paragraphs[].qas[])")

    def read(self, path: Path, cfg: Any, columns: Columns) -> Records:
        return Records(path, list(self.iter_records(path, cfg, columns)), by_row=True)


register_reader(SquadReader())
