"""Entity tagging in context, by generation: the model writes one ``entity text => TYPE`` line
per entity (or ``none``); each line is parsed, its words found in the sentence, and the spans
turned into IOB2 tags that the tagging kind scores with its conlleval-exact scorer. A line
that does not parse, names an unknown type or words the sentence does not have (where they are
not already taken) is a parse failure: counted, kept in the record, never silently dropped."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mtfsl.config import PromptTemplateConfig

NONE = "none"  # the answer of a sentence without entities
_LINE = re.compile(r"^\s*(?P<text>.+?)\s*=>\s*(?P<type>.+?)\s*$")


def answer_lines(words: list[str], tags: list[str], prompt: PromptTemplateConfig) -> str:
    """A demonstration's answer: its gold entities (IOB2 tags) as ``words => type`` lines,
    types through the verbalizer."""
    from seqeval.metrics.sequence_labeling import get_entities

    lines = [
        f"{' '.join(words[a : b + 1])} => {prompt.verbalizer.get(kind, kind)}"
        for kind, a, b in get_entities(list(tags))
    ]
    return "\n".join(lines) if lines else NONE


@dataclass
class Parsed:
    tags: list[str]
    failures: list[str] = field(default_factory=list)  # the lines that could not be used


def parse_entities(
    output: str, words: list[str], prompt: PromptTemplateConfig, kinds: list[str] = ()
) -> Parsed:
    """IOB2 tags of ``words`` from a generated answer. Each entity is matched to the first
    occurrence of its words (whole words; as written, else ignoring case) not yet tagged.
    A type is read as its verbalizer word or its own name (``kinds``: the task's types)."""
    names = {*kinds, *prompt.verbalizer}
    types = {prompt.verbalizer.get(kind, kind).lower(): kind for kind in names}
    types.update({kind.lower(): kind for kind in names})
    tags = ["O"] * len(words)
    failures = []
    for line in output.splitlines():
        if not line.strip() or line.strip().lower() == NONE:
            continue
        match = _LINE.match(line)
        kind = types.get(match["type"].lower()) if match else None
        where = _find(match["text"].split(), words, tags) if kind else None
        if where is None:
            failures.append(line)
            continue
        tags[where] = f"B-{kind}"
        for i in range(where + 1, where + len(match["text"].split())):
            tags[i] = f"I-{kind}"
    return Parsed(tags, failures)


def _find(entity: list[str], words: list[str], tags: list[str]) -> int | None:
    """The first free occurrence of the entity's words, as written, else ignoring case (a
    model writes "China" for CoNLL's all-capitals headline "CHINA")."""
    for fold in (False, True):
        wanted = [w.casefold() for w in entity] if fold else entity
        for start in range(len(words) - len(entity) + 1):
            span = range(start, start + len(entity))
            found = words[start : start + len(entity)]
            found = [w.casefold() for w in found] if fold else found
            if found == wanted and all(tags[i] == "O" for i in span):
                return start
    return None


class SpanGeneration:
    """The tagging kind's in-context scorer (entity tags, IOB2)."""

    name = "span_generation"

    def fields(self, example: Any) -> dict[str, Any]:
        return {"text": " ".join(example), "words": example}

    def answer(self, example: Any, target: Any, prompter: Any) -> str:
        return answer_lines(example, target, prompter.cfg)

    def key(self, example: Any) -> str:
        return " ".join(example)

    def for_task(self, task: Any) -> Any:
        """Entity tags by spans; per-word tags (``metric: TAG_ACCURACY``) word by word."""
        from mtfsl.icl.tags import WordTagGeneration
        from mtfsl.kinds.tagging import TagMetric

        return self if task.metric is TagMetric.ENTITY else WordTagGeneration()

    def predict(self, ctx, prompter, demos, split, labels):
        from mtfsl.icl.common import generated

        preds, records = [], []
        kinds = sorted({label[2:] for label in labels if label[:2] in ("B-", "I-")})
        for words, shown, text in generated(ctx, prompter, demos, split, self.fields):
            parsed = parse_entities(text, words, prompter.cfg, kinds)
            preds.append(parsed.tags)
            records.append({**shown, "output": text, "parse_failures": parsed.failures})
        return preds, records
