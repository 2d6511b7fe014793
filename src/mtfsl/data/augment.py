"""Training-data augmentation: N seeded copies of every training example.

NER methods (Dai & Adel 2020) keep the tag sequence valid IOB2; classification methods (EDA
without synonyms, back-translation) keep the label. Only the training split is augmented.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mtfsl.config import AugmentationConfig
from mtfsl.data.labels import split_tag
from mtfsl.data.splits import Split
from mtfsl.errors import ConfigError
from mtfsl.plugins import Registry, load_entry_points

log = logging.getLogger(__name__)
Tagged = tuple[list[str], list[str]]


def segments(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """Maximal runs (start, end, label) of one mention or of consecutive O words."""
    runs: list[tuple[int, int, str]] = []
    for i, tag in enumerate(tags):
        prefix, kind = split_tag(tag) if tag != "O" else ("O", "O")
        if runs and kind == runs[-1][2] and prefix != "B" and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1, kind)
        else:
            runs.append((i, i + 1, kind))
    return runs


class NerAugmenter:
    """Dai & Adel (2020) operations over a training set's words and mentions."""

    def __init__(self, sentences: Sequence[Tagged], p: float) -> None:
        self.p = p
        self.words_by_label: dict[str, list[str]] = {}
        self.mentions: dict[str, list[list[str]]] = {}
        for words, tags in sentences:
            for word, tag in zip(words, tags, strict=True):
                self.words_by_label.setdefault(tag, []).append(word)
            for start, end, kind in segments(tags):
                if kind != "O":
                    self.mentions.setdefault(kind, []).append(words[start:end])

    def token_replacement(self, words: list[str], tags: list[str], rng) -> Tagged:
        """Each word, with probability p, becomes a random training word with the same tag
        (drawn from the label-wise word distribution); the tags do not change."""
        out = [
            self.words_by_label[t][rng.integers(len(self.words_by_label[t]))]
            if rng.random() < self.p
            else w
            for w, t in zip(words, tags, strict=True)
        ]
        return out, list(tags)

    def mention_replacement(self, words: list[str], tags: list[str], rng) -> Tagged:
        """Each mention, with probability p, becomes a random training mention of its type
        (possibly of another length: tags are rebuilt as B-X I-X ...)."""
        new_words: list[str] = []
        new_tags: list[str] = []
        for start, end, kind in segments(tags):
            if kind != "O" and rng.random() < self.p:
                pool = self.mentions[kind]
                mention = pool[rng.integers(len(pool))]
                new_words += mention
                new_tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(mention) - 1)
            else:
                new_words += words[start:end]
                new_tags += tags[start:end]
        return new_words, new_tags

    def segment_shuffle(self, words: list[str], tags: list[str], rng) -> Tagged:
        """Each segment (a mention, or a run of O words), with probability p, has its words
        shuffled; the tags stay in place, so B-/I- positions are unchanged."""
        out = list(words)
        for start, end, _ in segments(tags):
            if end - start > 1 and rng.random() < self.p:
                out[start:end] = [words[i] for i in start + rng.permutation(end - start)]
        return out, list(tags)


def random_swap(words: list[str], p: float, rng) -> list[str]:
    """Swap two random words, max(1, p x length) times."""
    out = list(words)
    for _ in range(max(1, round(p * len(out))) if len(out) > 1 else 0):
        i, j = rng.choice(len(out), size=2, replace=False)
        out[i], out[j] = out[j], out[i]
    return out


def random_deletion(words: list[str], p: float, rng) -> list[str]:
    """Drop each word with probability p; a sentence never loses all its words."""
    kept = [w for w in words if rng.random() >= p]
    return kept or [words[rng.integers(len(words))]]


def random_insertion(words: list[str], p: float, rng) -> list[str]:
    """Insert a copy of a random word of the sentence at a random position,
    max(1, p x length) times (EDA inserts synonyms; no offline lexicon, so in-sentence words)."""
    out = list(words)
    for _ in range(max(1, round(p * len(words)))):
        out.insert(rng.integers(len(out) + 1), words[rng.integers(len(words))])
    return out


# (input, target, rng) -> (new input, new target): one augmentation of one example
Operation = Callable[[Any, Any, Any], tuple[Any, Any]]
BACK_TRANSLATION = "back_translation"  # done for all copies at once, by the run's translator
PARAPHRASE = "paraphrase"  # done for all copies at once, by the run's instruct LM
# What a run's batch rewriter (back-translation, paraphrase) is: (texts, their targets, seed)
# -> one new text each, or None where its filter rejected the text.
Rewriter = Callable[[list[Any], list[Any], int], list[Any]]


@dataclass(frozen=True)
class Augmentation:
    """An augmentation method: its name (``augmentation.methods``) and, for a split and the
    strength ``p``, the operation on one example. A kind lists the methods that fit it
    (``augmentations``); ``fits(kind, task)`` lets a method of another package say which
    kinds it fits too."""

    name: str
    make: Callable[[Split, float], Operation] | None  # None: back-translation
    fits: Callable[[Any, Any], bool] | None = None


def _ner(method: str) -> Callable[[Split, float], Operation]:
    """Dai & Adel's ``method`` over the split's own words and mentions."""

    def make(split: Split, p: float) -> Operation:
        ner = NerAugmenter(list(zip(split.inputs, split.targets, strict=True)), p)
        return getattr(ner, method)

    return make


def _eda(fn: Callable[[list[str], float, Any], list[str]]) -> Callable[[Split, float], Operation]:
    """EDA (without synonyms) on a whitespace-split text; the label is kept."""

    def make(split: Split, p: float) -> Operation:
        return lambda text, label, rng: (" ".join(fn(text.split(), p, rng)), label)

    return make


AUGMENTATIONS: Registry[Augmentation] = Registry("an augmentation method")
# Make a method available in ``augmentation.methods``.
register_augmentation = AUGMENTATIONS.add
for _name in ("token_replacement", "mention_replacement", "segment_shuffle"):
    register_augmentation(Augmentation(_name, _ner(_name)))
for _name, _fn in (
    ("random_swap", random_swap),
    ("random_deletion", random_deletion),
    ("random_insertion", random_insertion),
):
    register_augmentation(Augmentation(_name, _eda(_fn)))
register_augmentation(Augmentation(BACK_TRANSLATION, None))
register_augmentation(Augmentation(PARAPHRASE, None))
load_entry_points("mtfsl.augmentations")

NER = frozenset({"token_replacement", "mention_replacement", "segment_shuffle"})
TEXT = frozenset(
    {"random_swap", "random_deletion", "random_insertion", BACK_TRANSLATION, PARAPHRASE}
)


def method_names(methods: Sequence[str]) -> list[str]:
    """``augmentation.methods`` as registered names (any case in the config)."""
    return [AUGMENTATIONS.named(str(m).lower(), "augmentation.methods").name for m in methods]


def check_methods(methods: Sequence[str], kind: Any, task: Any, name: str) -> None:
    """Every method fits the task: its kind lists it, or the method says it fits."""
    wrong = []
    for method in method_names(methods):
        fits = AUGMENTATIONS[method].fits
        if method not in kind.augmentations(task) and not (fits and fits(kind, task)):
            wrong.append(method.upper())
    if wrong:
        allowed = sorted(m.upper() for m in kind.augmentations(task)) or "none"
        raise ConfigError(
            f"augmentation.methods: {wrong} do not apply to task '{name}' (kind {kind.name}); it "
            f"takes {allowed}"
        )


def augment_split(
    split: Split,
    cfg: AugmentationConfig,
    seed: int,
    rewriters: dict[str, Rewriter] | None = None,
) -> tuple[Split, dict[str, int]]:
    """The split followed by ``cfg.copies`` augmented copies of each example (each copy uses a
    method drawn at random from ``cfg.methods``). Returns the new split and counts per method.

    ``rewriters[method](texts, targets, seed)`` rewrites all copies of a batch method
    (back-translation, paraphrase) at once; copies it returns empty are left out and
    counted as ``METHOD_empty``, those its filter rejects (None) as ``METHOD_rejected``.
    """
    rng = np.random.default_rng(seed)
    methods = method_names(cfg.methods)
    make = {m: AUGMENTATIONS[m].make for m in set(methods)}
    operations = {m: f(split, cfg.p) for m, f in make.items() if f is not None}
    plan = [
        (i, methods[rng.integers(len(methods))])
        for _ in range(cfg.copies)
        for i in range(len(split))
    ]
    rewritten = {
        m: iter(_rewrite(rewriters or {}, m, [i for i, w in plan if w == m], split, seed))
        for m in make
        if make[m] is None
    }
    inputs, targets, sources = [], [], []
    counts: dict[str, int] = {}
    for i, method in plan:
        x, y = split.inputs[i], split.targets[i]
        if method in rewritten:
            x = next(rewritten[method])
            x = x.strip() if x is not None else None
        else:
            x, y = operations[method](x, y, rng)
        key = method if x else f"{method}_empty" if x is not None else f"{method}_rejected"
        counts[key] = counts.get(key, 0) + 1
        if x:  # an augmented sentence keeps its source's place, document and context
            inputs.append(x)
            targets.append(y)
            sources.append(i)
    for method in rewritten:
        if counts.get(f"{method}_empty"):
            log.warning(
                "%s gave %d empty texts; those copies are left out",
                method,
                counts[f"{method}_empty"],
            )
    return split.extended(inputs, targets, sources), counts


def _rewrite(rewriters, method: str, ids: list[int], split: Split, seed: int) -> list[Any]:
    if not ids:
        return []
    if method not in rewriters:
        raise ConfigError(f"augmentation.methods: {method.upper()} needs its model (not built)")
    texts, targets = [split.inputs[i] for i in ids], [split.targets[i] for i in ids]
    return rewriters[method](texts, targets, seed)
