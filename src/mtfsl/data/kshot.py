"""Seeded K-shot samplers: which training examples a few-shot run may see.

Every sampler takes the training targets, K, a random generator and a shortfall handler, and
returns indices into the training split. The handler decides (``few_shot.shortfall``) whether
a type or class that cannot supply K is an error or a logged cap; a sampler never silently
returns less.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mtfsl.data.labels import split_tag
from mtfsl.errors import ConfigError
from mtfsl.plugins import Registry, load_entry_points

# (what is short, e.g. "mentions of type PER", how many there are, K)
Short = Callable[[str, int, int], None]
Rng = np.random.Generator | int


def raise_short(what: str, available: int, k: int) -> None:
    raise ConfigError(f"few_shot.k={k}: the training split has only {available} {what}")


def mention_counts(tags: Sequence[str]) -> Counter[str]:
    """Entity mentions per type in one IOB2 sentence (each ``B-`` starts one)."""
    return Counter(split_tag(t)[1] for t in tags if t.startswith("B-"))


def _totals(per_sentence: Sequence[Counter[str]]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for counts in per_sentence:
        totals.update(counts)
    return totals


def greedy_at_least_k(
    tags: Sequence[Sequence[str]], k: int, rng: Rng, short: Short = raise_short
) -> list[int]:
    """Yang & Katiyar (2020), Algorithm 1: every type gets at least ``k`` mentions.

    Types are visited from rarest to most frequent; for each, random sentences containing it
    are added (without replacement) until its mention count reaches ``k``. Mentions of other
    types in a chosen sentence count for those types too. Returns sorted indices.
    """
    rng = np.random.default_rng(rng)
    per_sentence = [mention_counts(t) for t in tags]
    totals = _totals(per_sentence)
    chosen: set[int] = set()
    have: Counter[str] = Counter()
    for kind in sorted(totals, key=lambda t: (totals[t], t)):
        if totals[kind] < k:
            short(f"mentions of type {kind}", totals[kind], k)
        candidates = [i for i, c in enumerate(per_sentence) if c[kind] and i not in chosen]
        for i in rng.permutation(candidates).tolist() if candidates else []:
            if have[kind] >= k:
                break
            chosen.add(i)
            have.update(per_sentence[i])
    return sorted(chosen)


def exact_k(
    tags: Sequence[Sequence[str]], k: int, rng: Rng, short: Short = raise_short
) -> list[int]:
    """EntLM (Ma et al. 2022): visit sentences with entities in random order and take one
    only if no type would go over ``k`` mentions; stop when every type has ``k``.
    Returns sorted indices; every type ends with at most ``k`` mentions."""
    rng = np.random.default_rng(rng)
    per_sentence = [mention_counts(t) for t in tags]
    types = sorted(_totals(per_sentence))
    have: Counter[str] = Counter()
    chosen = []
    for i in rng.permutation(len(tags)).tolist():
        counts = per_sentence[i]
        if not counts or any(have[t] + n > k for t, n in counts.items()):
            continue
        chosen.append(i)
        have.update(counts)
        if all(have[t] >= k for t in types):
            break
    for kind in types:
        if have[kind] < k:
            short(
                f"mentions of type {kind} that fit without another type going over K", have[kind], k
            )
    return sorted(chosen)


def sentences_per_type(
    tags: Sequence[Sequence[str]], k: int, rng: Rng, short: Short = raise_short
) -> list[int]:
    """Huang et al. (2020): for every type (alphabetically), ``k`` random sentences that
    contain it. A sentence drawn for two types appears twice, as in the published splits, so
    the result has exactly ``k`` x types indices (in draw order)."""
    rng = np.random.default_rng(rng)
    per_sentence = [mention_counts(t) for t in tags]
    chosen: list[int] = []
    for kind in sorted(_totals(per_sentence)):
        candidates = [i for i, c in enumerate(per_sentence) if c[kind]]
        if len(candidates) < k:
            short(f"sentences with type {kind}", len(candidates), k)
        take = min(k, len(candidates))
        chosen.extend(rng.choice(candidates, size=take, replace=False).tolist())
    return chosen


def per_class(labels: Sequence[str], k: int, rng: Rng, short: Short = raise_short) -> list[int]:
    """LM-BFF / SetFit: ``k`` random examples of every class present. Returns sorted indices."""
    rng = np.random.default_rng(rng)
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    chosen: list[int] = []
    for label in sorted(by_class):
        members = by_class[label]
        if len(members) < k:
            short(f"examples of class {label!r}", len(members), k)
        chosen.extend(rng.permutation(members)[:k].tolist())
    return sorted(chosen)


def random_k(targets: Sequence[Any], k: int, rng: Rng, short: Short = raise_short) -> list[int]:
    """``k`` examples drawn uniformly without replacement, for kinds whose targets have no
    classes to balance (a similarity score, an answer span). Returns sorted indices."""
    rng = np.random.default_rng(rng)
    if len(targets) < k:
        short("examples", len(targets), k)
    return sorted(rng.permutation(len(targets))[:k].tolist())


Sampler = Callable[[Sequence[Any], int, Rng, Short], list[int]]
# Not draws: the kind's default sampler, and a published split read from files.
AUTO, SPLIT_FILE = "auto", "split_file"


@dataclass(frozen=True)
class KShotDraw:
    """A K-shot sampler: its name (``few_shot.sampler``) and its draw. A kind lists the
    samplers that fit it (``samplers``); ``fits`` lets a sampler of another package say which
    kinds it fits too (``fits(kind, task)``)."""

    name: str
    draw: Sampler
    fits: Callable[[Any, Any], bool] | None = None


KSHOT_SAMPLERS: Registry[KShotDraw] = Registry("a K-shot sampler")
# Make a sampler available as ``few_shot.sampler: NAME``.
register_kshot_sampler = KSHOT_SAMPLERS.add
for _name, _draw in (
    ("greedy", greedy_at_least_k),
    ("exact", exact_k),
    ("sentences_per_type", sentences_per_type),
    ("per_class", per_class),
    ("random", random_k),
):
    register_kshot_sampler(KShotDraw(_name, _draw))
load_entry_points("mtfsl.kshot_samplers")


def _names(names: Any) -> list[str]:
    return sorted(n.upper() for n in names) or ["none"]


def resolve_sampler(sampler: str, kind: Any, task: Any, name: str) -> str:
    """The concrete sampler's name for a task (auto: its kind's default); a clear error when
    there is no such sampler or it does not fit the task's kind."""
    chosen, fitting = str(sampler).lower(), kind.samplers(task)
    if chosen == AUTO:
        default = kind.default_sampler(task)
        if default is None:
            raise ConfigError(
                f"few_shot.k: task '{name}' (kind {kind.name}) has no default K-shot sampler; "
                f"set few_shot.sampler to one of {_names(fitting)}"
            )
        return default
    if chosen != SPLIT_FILE and chosen not in KSHOT_SAMPLERS:
        known = _names([AUTO, SPLIT_FILE, *KSHOT_SAMPLERS])
        raise ConfigError(f"few_shot.sampler={sampler}: expected a K-shot sampler, one of {known}")
    draw = KSHOT_SAMPLERS.get(chosen)
    if chosen not in fitting and not (draw and draw.fits and draw.fits(kind, task)):
        raise ConfigError(
            f"few_shot.sampler={chosen.upper()}: does not fit task '{name}' (kind {kind.name}); "
            f"it takes {_names(fitting)}"
        )
    return chosen
