"""Word tagging in context (part-of-speech and other per-word tags scored by tag accuracy):
the model rewrites the sentence as ``word/TAG`` pairs, read back word by word. A pair that
does not parse, names an unknown tag or a word out of place is a parse failure, counted and
kept in the record; a word the output does not tag gets the demonstrations' most frequent tag
(counted too), so every word has a prediction for the scorer."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

from mtfsl.config import PromptTemplateConfig


def word_tags(words: list[str], tags: list[str], prompt: PromptTemplateConfig) -> str:
    """A demonstration's answer: ``word/TAG`` per word, tags through the verbalizer."""
    return " ".join(f"{w}/{prompt.verbalizer.get(t, t)}" for w, t in zip(words, tags, strict=True))


def parse_word_tags(
    output: str, words: list[str], prompt: PromptTemplateConfig, fallback: str
) -> tuple[list[str], list[str]]:
    """Each word's tag from a generated answer, and the failures: pairs read in order, each
    matched to the sentence's next occurrence of its word (ignoring case) after the last one
    matched, so a word the model skips costs that word only; words left untagged get
    ``fallback``."""
    names = {v: k for k, v in prompt.verbalizer.items()} | {k: k for k in prompt.verbalizer}
    folded = [w.casefold() for w in words]
    tags: list[str | None] = [None] * len(words)
    failures, at = [], 0
    for piece in output.split():
        word, slash, tag = piece.rpartition("/")
        kind = names.get(tag) if slash else None
        where = folded.index(word.casefold(), at) if word.casefold() in folded[at:] else None
        if kind is None or where is None:
            failures.append(piece)
            continue
        tags[where] = kind
        at = where + 1
    failures += [f"untagged: {w}" for w, t in zip(words, tags, strict=True) if t is None]
    return [fallback if t is None else t for t in tags], failures


class WordTagGeneration:
    """The tagging kind's in-context scorer for per-word tags (``metric: TAG_ACCURACY``)."""

    name = "word_tag_generation"

    def fields(self, example: Any) -> dict[str, Any]:
        return {"text": " ".join(example), "words": example}

    def answer(self, example: Any, target: Any, prompter: Any) -> str:
        return word_tags(example, target, prompter.cfg)

    def key(self, example: Any) -> str:
        return " ".join(example)

    def for_task(self, task: Any) -> WordTagGeneration:
        return self

    def predict(self, ctx, prompter, demos, split, labels):
        from mtfsl.icl.common import generated

        cfg = prompter.cfg
        # every tag not in the verbalizer is written as itself
        cfg = replace(cfg, verbalizer={**{t: t for t in labels}, **cfg.verbalizer})
        common = Counter(t for target in demos.targets for t in target).most_common(1)
        fallback = common[0][0] if common else labels[0]
        preds, records = [], []
        for words, shown, text in generated(ctx, prompter, demos, split, self.fields):
            tags, failures = parse_word_tags(text, words, cfg, fallback)
            preds.append(tags)
            records.append({**shown, "output": text, "parse_failures": failures})
        return preds, records
