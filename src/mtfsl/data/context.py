"""Document context (FLERT, Schweter & Akbik 2020): the words of neighbouring sentences of
the same document, fed to the encoder around a sentence but never labelled or predicted."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

Context = tuple[list[str], list[str]]
T = TypeVar("T")


def document_ids(docs: list[int | None]) -> list[int]:
    """Documents for ``neighbour_context``: none when no example has one (a file without
    document markers); examples before a file's first marker form a document of their own."""
    if all(d is None for d in docs):
        return []
    return [-1 if d is None else d for d in docs]


def neighbour_context(words: list[list[str]], docs: list[int], n: int) -> list[Context]:
    """Per sentence: the words of up to ``n`` preceding and ``n`` following sentences of the
    same document (in file order)."""
    out: list[Context] = []
    for i, doc in enumerate(docs):
        before = range(max(0, i - n), i)
        after = range(i + 1, min(len(docs), i + n + 1))
        left = [w for j in before if docs[j] == doc for w in words[j]]
        right = [w for j in after if docs[j] == doc for w in words[j]]
        out.append((left, right))
    return out


def windows(rows: Iterable[T], size: int, margin: int) -> Iterator[tuple[list[T], range]]:
    """Consecutive chunks of ``size`` rows, each with up to ``margin`` rows before and after
    it as neighbours: yields (rows, range of the chunk's own rows within them); the last
    chunk takes what is left (up to ``size + margin`` rows).

    A stream of any length is read once and never holds more than ``size + 2 * margin`` rows;
    with ``margin = data.context`` every sentence sees the same neighbours as in the whole
    file.
    """
    buffer: list[T] = []
    start = 0  # buffer[:start]: the previous chunk's tail, kept as left neighbours
    for row in rows:
        buffer.append(row)
        if len(buffer) == start + size + margin:
            yield buffer, range(start, start + size)
            keep = min(margin, start + size)
            buffer = buffer[start + size - keep :]
            start = keep
    if len(buffer) > start:
        yield buffer, range(start, len(buffer))
