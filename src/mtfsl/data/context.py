"""Document context (FLERT, Schweter & Akbik 2020): the words of neighbouring sentences of
the same document, fed to the encoder around a sentence but never labelled or predicted."""

from __future__ import annotations

Context = tuple[list[str], list[str]]


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
