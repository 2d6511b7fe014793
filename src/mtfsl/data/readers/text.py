"""Plain-text file helpers shared by the readers: UTF-8 decoding with ``file:line`` errors,
lines, CoNLL column blocks and line-aligned word / tag files."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from sys import intern

from mtfsl.errors import DataError


@dataclass(frozen=True)
class Sentence:
    """One sentence of a column file.

    Attributes:
        fields: one tuple of column values per token (all columns, as in the file).
        doc: index of the document (``-DOCSTART-`` block) the sentence belongs to; None
            before the file's first marker (a file without markers has no documents).
        line: 1-based line number of the sentence's first token.
    """

    fields: tuple[tuple[str, ...], ...]
    doc: int | None
    line: int

    def column(self, index: int) -> list[str]:
        return [row[index] for row in self.fields]


def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from None
    try:
        # utf-8-sig drops a leading byte-order mark, which would otherwise glue onto token 1.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{raw[err.start]:02x}); "
            "re-encode the file as UTF-8"
        ) from None


def stream(path: Path) -> Iterator[str]:
    """The file's lines, read lazily, endings kept as ``open(newline="")`` splits them (what
    the csv module wants); a byte-order mark is dropped. Errors are those of ``_decode``."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError:
        _decode(path)  # raises the DataError for a missing or unreadable file
        raise
    with handle:
        try:
            yield from handle
        except UnicodeDecodeError:
            _decode(path)  # the slow path, only to name the offending line
            raise


def text_lines(path: str | Path, newlines_only: bool = False) -> Iterator[str]:
    """The lines of a UTF-8 text file without their endings, read lazily; numbered as
    ``str.splitlines`` numbers them (which also breaks at \\r, \\x85, \\u2028, ...), or with
    ``newlines_only`` at ``\\n`` (and ``\\r\\n``) alone."""
    for line in stream(Path(path)):
        if newlines_only:
            yield line.removesuffix("\n").removesuffix("\r")
        else:
            yield from line.splitlines()


def _blocks(lines: Iterable[str]) -> Iterator[tuple[int, list[list[str]]]]:
    """Yield (first line number, rows) for each run of non-blank lines. A byte-order mark at
    the start of a line (files joined with ``cat``, each starting with one) is dropped, so
    it never glues onto a token or hides a ``-DOCSTART-`` line."""
    rows: list[list[str]] = []
    start = 0
    for number, line in enumerate(lines, start=1):
        # interned: a corpus repeats its words and tags, one string object each (200k
        # sentences: scripts/bench_jsonl_memory.py)
        parts = [intern(p) for p in line.lstrip("\ufeff").split()]
        if not parts:  # blank or whitespace-only line: a sentence break
            if rows:
                yield start, rows
            rows = []
            continue
        if not rows:
            start = number
        rows.append(parts)
    if rows:
        yield start, rows


def iter_conll(path: str | Path, doc_marker: str = "-DOCSTART-") -> Iterator[Sentence]:
    """Read a whitespace-separated column file (one token per line, blank line between
    sentences) lazily, a sentence at a time.

    Lines whose first field is ``doc_marker`` start a new document; they are not sentences.
    Every token line must have the same number of columns as the file's first token line.

    Raises:
        DataError: missing/unreadable file, invalid UTF-8, ragged columns, or no sentences;
            the message gives ``file:line``.
    """
    path = Path(path)
    width: int | None = None
    # None until the first marker: a file without markers has no documents, and sentences
    # before the first one are none of the others' (the original IOB1 eng.train puts its
    # first -DOCSTART- at the very end).
    doc: int | None = None
    found = False
    for start, rows in _blocks(text_lines(path)):
        kept: list[tuple[str, ...]] = []
        first = start
        for offset, parts in enumerate(rows):
            if parts[0] == doc_marker:
                doc = 0 if doc is None else doc + 1
                first = start + offset + 1
                continue
            if width is None:
                width = len(parts)
            if len(parts) != width:
                raise DataError(
                    f"{path}:{start + offset}: expected {width} columns like the file's first "
                    f"token line, found {len(parts)}: {' '.join(parts)!r}"
                )
            kept.append(tuple(parts))
        if kept:
            found = True
            yield Sentence(tuple(kept), doc, first)
    if not found:
        raise DataError(f"{path}: no sentences found (empty file or only document markers)")


def read_conll(path: str | Path, doc_marker: str = "-DOCSTART-") -> list[Sentence]:
    """All sentences of a column file (see ``iter_conll``)."""
    return list(iter_conll(path, doc_marker))


def check_column(path: str | Path, sentences: list[Sentence], index: int, role: str) -> None:
    """Fail clearly when a configured column does not exist in the file."""
    width = len(sentences[0].fields[0])
    if not -width <= index < width:
        raise DataError(
            f"{path}:{sentences[0].line}: task.{role}_column={index} but the file has "
            f"{width} columns"
        )


@dataclass(frozen=True)
class TaggedLine:
    """One sentence of a line-aligned pair of files (words / tags), e.g. a few-shot split."""

    words: list[str]
    tags: list[str]
    line: int


def read_line_pairs(
    words_path: str | Path, tags_path: str | Path, unescape: dict[str, str] | None = None
) -> list[TaggedLine]:
    """Read a sentence per line from ``words_path`` and its tags from the same line of
    ``tags_path`` (both space-separated). ``unescape`` maps escaped tokens back
    (e.g. ``-LPR-`` to ``(``); tags are returned as written.

    Raises:
        DataError: unequal line counts, or a line whose word and tag counts differ, or an
            empty line (file:line).
    """
    words_path, tags_path = Path(words_path), Path(tags_path)
    word_lines = _decode(words_path).splitlines()
    tag_lines = _decode(tags_path).splitlines()
    if len(word_lines) != len(tag_lines):
        raise DataError(
            f"{tags_path}: {len(tag_lines)} lines, but {words_path} has {len(word_lines)}; "
            "the files must be line-aligned"
        )
    unescape = unescape or {}
    out = []
    for number, (wline, tline) in enumerate(zip(word_lines, tag_lines, strict=True), start=1):
        words, tags = wline.split(), tline.split()
        if not words:
            raise DataError(f"{words_path}:{number}: empty line (expected one sentence per line)")
        if len(words) != len(tags):
            raise DataError(
                f"{tags_path}:{number}: {len(tags)} tags for the {len(words)} words of "
                f"{words_path}:{number}"
            )
        out.append(TaggedLine([unescape.get(w, w) for w in words], tags, number))
    return out
