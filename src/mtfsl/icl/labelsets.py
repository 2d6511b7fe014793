"""Multi-label classification in context (``conll_types``: which entity types a sentence
mentions): the model lists the labels' words, comma-separated, or ``none``; each item is read
back through the verbalizer. An item that names no label is a parse failure, counted and kept
in the record."""

from __future__ import annotations

from typing import Any

from mtfsl.icl.prompts import verbalized

NONE = "none"


class LabelSetGeneration:
    """The multi-label kind's in-context scorer."""

    name = "label_set_generation"

    def fields(self, example: Any) -> dict[str, Any]:
        return {"text": example}

    def answer(self, example: Any, target: Any, prompter: Any) -> str:
        return ", ".join(verbalized(prompter.cfg, list(target))) or NONE

    def key(self, example: Any) -> str:
        return example

    def for_task(self, task: Any) -> LabelSetGeneration:
        return self

    def predict(self, ctx, prompter, demos, split, labels):
        from mtfsl.icl.answers import first_line
        from mtfsl.icl.common import generated

        names = {
            w.casefold(): label
            for label, w in zip(labels, verbalized(prompter.cfg, labels), strict=True)
        }
        names.update({label.casefold(): label for label in labels})
        preds, records = [], []
        for _, shown, text in generated(ctx, prompter, demos, split, self.fields):
            items = [x.strip().rstrip(".") for x in first_line(text).split(",") if x.strip()]
            found = {names[x.casefold()] for x in items if x.casefold() in names}
            failures = [x for x in items if x.casefold() not in names and x.casefold() != NONE]
            preds.append(sorted(found))
            records.append({**shown, "output": text, "parse_failures": failures})
        return preds, records
