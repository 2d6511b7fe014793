"""Word shapes for tagging with an uncased encoder (``task.NAME.case_features``).

The encoders installable here are uncased: their tokenizers lowercase every word, so "Apple"
and "apple", or "US" and "us", reach the model as the same sub-tokens. Capitalisation is
among the strongest cues for names, so a tagging task may add one learned embedding per word
shape to its sub-tokens' input embeddings (``MultiTaskModel.encode``), the casing feature of
Reimers & Gurevych (2017) and of most pre-transformer NER taggers. It is hand-written
because no tokenizer or library exposes the case the normaliser removed.
"""

from __future__ import annotations

from enum import IntEnum


class WordCase(IntEnum):
    """A word's shape; the value is its row in the shape embedding (0: no word)."""

    NONE = 0  # special tokens and padding
    LOWER = 1  # every letter lowercase: "the", "don't"
    TITLE = 2  # a capital, then lowercase: "Japan", "I", "O'neil"
    TITLE_FIRST = 3  # TITLE as a sentence's first word, where any word is capitalised
    UPPER = 4  # two or more letters, all capitals: "EU", "U.S.", "SOCCER"
    MIXED = 5  # other mixes: "McDonald", "iPhone", "eBay"
    NUMBER = 6  # digits and no letters: "1996", "3-2", "10.5"
    OTHER = 7  # neither letters nor digits: ",", "(", "--"


CASE_VOCAB = len(WordCase)  # rows of the shape embedding


def word_case(word: str, first: bool = False) -> WordCase:
    """The shape of ``word``; ``first``: it opens its sentence."""
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return WordCase.NUMBER if any(c.isdigit() for c in word) else WordCase.OTHER
    if all(c.islower() for c in letters):
        return WordCase.LOWER
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return WordCase.UPPER
    if letters[0].isupper() and all(not c.isupper() for c in letters[1:]):
        return WordCase.TITLE_FIRST if first else WordCase.TITLE
    return WordCase.MIXED


def word_cases(words: list[str], start: int = 0) -> list[int]:
    """The shape of every word of ``words``, whose sentence opens at ``words[start]``; the
    words before it are document context, whose sentence openings are not marked."""
    return [int(word_case(w, first=i == start)) for i, w in enumerate(words)]
