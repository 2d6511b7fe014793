"""Extractive QA and regression in context, by generation: the model writes the answer
after the prompt (greedy, cut at the end of its line), and the kind scores it with its own
metric: the official SQuAD v1.1 exact match and F1 on the answer text; Pearson and Spearman on
the number. A number that cannot be read from the output is a parse failure, counted and kept
in the record; its example is predicted as the mean of the numbers that could be read (a
correlation needs a value for every example, and the mean leaves the others' order alone)."""

from __future__ import annotations

import re
from typing import Any

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")


def first_line(text: str) -> str:
    """The answer as written: its first non-empty line, trimmed."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def read_number(text: str) -> float | None:
    """The first number of an answer's first line (``3.8``, ``4``, ``.5``), else None."""
    match = _NUMBER.search(first_line(text))
    return float(match.group()) if match else None


class AnswerGeneration:
    """The QA kind's in-context scorer: the passage and question in, the answer text out."""

    name = "answer_generation"

    def fields(self, example: Any) -> dict[str, Any]:
        return {"context": example.context, "question": example.question}

    def answer(self, example: Any, target: Any, prompter: Any) -> str:
        return target[0][0]  # the first reference answer's text

    def key(self, example: Any) -> str:
        return example.question  # the passage is often the same for every question

    def for_task(self, task: Any) -> AnswerGeneration:
        return self

    def predict(self, ctx, prompter, demos, split, labels):
        from mtfsl.icl.common import generated
        from mtfsl.kinds.qa import Answer

        preds, records = [], []
        for question, shown, text in generated(ctx, prompter, demos, split, self.fields):
            answer = first_line(text)
            # where the answer is in the passage (-1: the model wrote words it does not have;
            # SQuAD's metrics score the text either way)
            start = question.context.find(answer) if answer else -1
            preds.append(Answer(answer, start, 0.0))
            records.append({**shown, "output": text, "in_context": start >= 0})
        return preds, records


class NumberGeneration:
    """The regression kind's in-context scorer (STS-B): a text pair in, a number out."""

    name = "number_generation"

    def __init__(self, decimals: int = 1) -> None:
        self.decimals = decimals  # how demonstrations write their scores

    def fields(self, example: Any) -> dict[str, Any]:
        if isinstance(example, tuple):  # a regression task of text pairs (STS-B)
            first, second = example
            return {"text": first, "text_a": first, "text_b": second}
        return {"text": example}

    def key(self, example: Any) -> str:
        return " ".join(example) if isinstance(example, tuple) else example

    def for_task(self, task: Any) -> NumberGeneration:
        return self

    def answer(self, example: Any, target: Any, prompter: Any) -> str:
        return f"{target:.{self.decimals}f}"

    def predict(self, ctx, prompter, demos, split, labels):
        from mtfsl.icl.common import generated

        numbers, records = [], []
        for _, shown, text in generated(ctx, prompter, demos, split, self.fields):
            number = read_number(text)
            numbers.append(number)
            records.append(
                {**shown, "output": text, "parse_failures": [] if number is not None else [text]}
            )
        read = [n for n in numbers if n is not None]
        fallback = sum(read) / len(read) if read else 0.0
        return [fallback if n is None else n for n in numbers], records
