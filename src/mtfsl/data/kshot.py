"""Seeded K-shot sampling of training sentences per entity type."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mtfsl.config import FewShotConfig, KShotSampler
from mtfsl.data.labels import split_tag
from mtfsl.errors import ConfigError


def mention_counts(tags: Sequence[str]) -> Counter[str]:
    """Entity mentions per type in one IOB2 sentence (each ``B-`` starts one)."""
    return Counter(split_tag(t)[1] for t in tags if t.startswith("B-"))


def greedy_at_least_k(tags: Sequence[Sequence[str]], k: int, seed: int) -> list[int]:
    """Yang & Katiyar (2020), Algorithm 1: every type gets at least ``k`` mentions.

    Types are visited from rarest to most frequent; for each, random sentences containing it
    are added (without replacement) until its mention count reaches ``k``. Mentions of other
    types in a chosen sentence count for those types too.

    Returns:
        Sorted indices of the chosen sentences.

    Raises:
        ConfigError: when a type has fewer than ``k`` mentions in the whole training split.
    """
    per_sentence = [mention_counts(t) for t in tags]
    totals: Counter[str] = Counter()
    for counts in per_sentence:
        totals.update(counts)
    rng = np.random.default_rng(seed)
    chosen: set[int] = set()
    have: Counter[str] = Counter()
    for kind in sorted(totals, key=lambda t: (totals[t], t)):
        if totals[kind] < k:
            raise ConfigError(
                f"few_shot.k={k}: the training split has only {totals[kind]} mentions of "
                f"type {kind}"
            )
        candidates = [i for i, c in enumerate(per_sentence) if c[kind] and i not in chosen]
        for i in rng.permutation(candidates).tolist() if candidates else []:
            if have[kind] >= k:
                break
            chosen.add(i)
            have.update(per_sentence[i])
    return sorted(chosen)


_SAMPLERS: dict[KShotSampler, Callable[[Sequence[Sequence[str]], int, int], list[int]]] = {
    KShotSampler.GREEDY: greedy_at_least_k,
}


def sample_k_shot(tags: Sequence[Sequence[str]], cfg: FewShotConfig, run_seed: int) -> list[int]:
    """Indices of the K-shot training subset chosen by the configured sampler."""
    assert cfg.k is not None
    seed = run_seed if cfg.seed is None else cfg.seed
    return _SAMPLERS[cfg.sampler](tags, cfg.k, seed)


def save_ids(
    path: Path,
    ids: list[int],
    lines: Sequence[int],
    cfg: FewShotConfig,
    seed: int,
    source: Path,
    counts: dict[str, int],
) -> None:
    """Record the chosen sentences (index and line in the training file) in the run folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "sampler": cfg.sampler.value,
        "k": cfg.k,
        "seed": seed,
        "train_file": str(source),
        "num_sentences": len(ids),
        "mentions_per_type": counts,
        "sentence_ids": ids,
        "lines": [lines[i] for i in ids],
    }
    path.write_text(json.dumps(record, indent=1) + "\n")
