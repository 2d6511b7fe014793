"""Label schemes: tag validation, IOB1/IOB2 detection and conversion, label lists."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mtfsl.config import LabelScheme
from mtfsl.errors import DataError

OUTSIDE = "O"


class TagError(ValueError):
    """A tag that is not ``O``, ``B-TYPE`` or ``I-TYPE``; carries the token position."""

    def __init__(self, tag: str, position: int) -> None:
        super().__init__(f"invalid tag {tag!r}: expected O, B-TYPE or I-TYPE")
        self.tag = tag
        self.position = position


def split_tag(tag: str) -> tuple[str, str]:
    """Return (prefix, type) of a tag; ``("O", "")`` for the outside tag.

    Raises:
        ValueError: for anything but ``O``, ``B-TYPE`` or ``I-TYPE`` with a non-empty type.
    """
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, sep, kind = tag.partition("-")
    if sep and prefix in ("B", "I") and kind:
        return prefix, kind
    raise ValueError(tag)


def check_tags(tags: Sequence[str]) -> None:
    """Raise TagError at the first malformed tag."""
    for position, tag in enumerate(tags):
        try:
            split_tag(tag)
        except ValueError:
            raise TagError(tag, position) from None


def _inside_start(tags: Sequence[str]) -> int | None:
    """The position of the first chunk that begins with ``I-`` (legal in IOB1, never in
    IOB2), or None."""
    previous = OUTSIDE
    for position, tag in enumerate(tags):
        prefix, kind = split_tag(tag)
        if prefix == "I" and split_tag(previous)[1] != kind:
            return position
        previous = tag
    return None


def _starts_with_inside(tags: Sequence[str]) -> bool:
    return _inside_start(tags) is not None


def detect_scheme(sequences: Sequence[Sequence[str]]) -> LabelScheme:
    """IOB1 if any chunk starts with ``I-``, else IOB2 (data valid in both reads the same)."""
    if any(_starts_with_inside(tags) for tags in sequences):
        return LabelScheme.IOB1
    return LabelScheme.IOB2


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """Convert IOB1 tags to IOB2: an ``I-X`` that starts a chunk becomes ``B-X``."""
    out: list[str] = []
    previous_kind = ""
    for tag in tags:
        prefix, kind = split_tag(tag)
        if prefix == "I" and kind != previous_kind:
            tag = f"B-{kind}"
        out.append(tag)
        previous_kind = kind
    return out


def to_io(tag: str) -> str:
    """An IOB tag in the IO scheme: ``B-X`` becomes ``I-X``; ``I-X`` and ``O`` stay."""
    prefix, kind = split_tag(tag)
    return f"I-{kind}" if prefix == "B" else tag


def entity_types(sequences: Sequence[Sequence[str]]) -> list[str]:
    """Sorted entity types present in the tag sequences."""
    return sorted({split_tag(tag)[1] for tags in sequences for tag in tags} - {""})


def bio_labels(types: Sequence[str]) -> list[str]:
    """``O`` followed by ``B-T``, ``I-T`` for every type, in type order."""
    return [OUTSIDE] + [f"{prefix}-{kind}" for kind in types for prefix in ("B", "I")]


Where = Callable[[int, int], str]  # (sentence index, tag position) -> "file:line"


def to_iob2(
    sequences: list[list[str]],
    scheme: LabelScheme,
    source: str,
    lines: Sequence[int],
    where: Where | None = None,
) -> list[list[str]]:
    """Validate tags and return them in IOB2.

    Args:
        sequences: tag sequences, one per sentence.
        scheme: the file's declared scheme (AUTO detects it).
        source: file name for error messages.
        lines: first line number of each sentence, for error messages (a tag per line).
        where: names the place of tag ``position`` of sentence ``i`` instead (e.g. for JSON
            lines, where a sentence's tags share one line).

    Raises:
        DataError: naming ``file:line`` of the first malformed tag.
    """
    at = where or (lambda i, position: f"{source}:{lines[i] + position}")
    for i, tags in enumerate(sequences):
        try:
            check_tags(tags)
        except TagError as err:
            raise DataError(f"{at(i, err.position)}: {err}") from None
    if scheme is LabelScheme.AUTO:
        scheme = detect_scheme(sequences)
    if scheme is LabelScheme.IOB1:
        return [iob1_to_iob2(tags) for tags in sequences]
    for i, tags in enumerate(sequences):
        if (position := _inside_start(tags)) is not None:
            raise DataError(
                f"{at(i, position)}: label_scheme=IOB2 but the chunk at {tags[position]!r} "
                "starts with I- (set the task's label_scheme to IOB1 or AUTO)"
            )
    return sequences
