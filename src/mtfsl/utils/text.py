"""What counts as text: a word or a context made only of spaces and invisible characters
(a zero-width space is a format character) gives a tokenizer nothing to work with."""

from __future__ import annotations

import unicodedata

_INVISIBLE = ("Z", "C")  # separators (spaces); control, format, unassigned, private use


def visible(text: str) -> bool:
    """True when ``text`` has at least one character that is not a space, a separator or an
    invisible control or format character."""
    return any(not unicodedata.category(c).startswith(_INVISIBLE) for c in text)


def word_problem(word: object) -> str | None:
    """Why ``word`` cannot be one token of a word-per-column file (None when it can): a
    prediction file writes it in a column, so it must be a string with something visible in
    it and no whitespace inside."""
    if not isinstance(word, str):
        return f"{word!r:.40} is not a string"
    if not visible(word):
        return f"{word!r:.40} is empty or invisible"
    if any(c.isspace() for c in word):
        return f"{word!r:.40} contains whitespace (one word per token)"
    return None
