"""A line-by-line Python port of the chunk logic of the official conlleval Perl script.

Used only by tests, as an independent check of the F1 that mtfsl reports.
"""

from __future__ import annotations

from pathlib import Path


def _split(tag: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    prefix, _, kind = tag.partition("-")
    return prefix, kind


def _end_of_chunk(prev: str, tag: str, prev_type: str, type_: str) -> bool:
    return (
        (prev == "B" and tag in ("B", "O"))
        or (prev == "I" and tag in ("B", "O"))
        or (prev not in ("O", ".") and prev_type != type_)
    )


def _start_of_chunk(prev: str, tag: str, prev_type: str, type_: str) -> bool:
    return (
        (tag == "B" and prev in ("B", "I", "O"))
        or (prev == "O" and tag == "I")
        or (tag not in ("O", ".") and prev_type != type_)
    )


def conlleval(pairs_by_sentence: list[list[tuple[str, str]]]) -> dict[str, float]:
    """Precision, recall, F1 (percent) over sentences of (gold, guess) tag pairs."""
    correct = found_guessed = found_correct = 0
    in_correct = False
    last_c, last_ct, last_g, last_gt = "O", "", "O", ""
    stream: list[tuple[str, str]] = []
    for sentence in pairs_by_sentence:
        stream.extend(sentence)
        stream.append(("O", "O"))  # the script turns a blank line into a boundary O token
    for gold, guess in stream:
        c, ct = _split(gold)
        g, gt = _split(guess)
        if in_correct:
            end_c = _end_of_chunk(last_c, c, last_ct, ct)
            end_g = _end_of_chunk(last_g, g, last_gt, gt)
            if end_c and end_g and last_gt == last_ct:
                in_correct = False
                correct += 1
            elif end_c != end_g or gt != ct:
                in_correct = False
        start_c = _start_of_chunk(last_c, c, last_ct, ct)
        start_g = _start_of_chunk(last_g, g, last_gt, gt)
        if start_c and start_g and gt == ct:
            in_correct = True
        found_correct += start_c
        found_guessed += start_g
        last_c, last_ct, last_g, last_gt = c, ct, g, gt
    if in_correct:
        correct += 1
    p = 100.0 * correct / found_guessed if found_guessed else 0.0
    r = 100.0 * correct / found_correct if found_correct else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f}


def conlleval_file(path: Path) -> dict[str, float]:
    """Score a ``token gold pred`` file (blank line between sentences)."""
    sentences: list[list[tuple[str, str]]] = [[]]
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if not parts:
            sentences.append([])
        else:
            sentences[-1].append((parts[-2], parts[-1]))
    return conlleval([s for s in sentences if s])
