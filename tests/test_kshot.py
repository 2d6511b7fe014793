from collections import Counter

import pytest

from mtfsl.data.kshot import greedy_at_least_k, mention_counts
from mtfsl.errors import ConfigError


def corpus() -> list[list[str]]:
    """6 one-PER sentences, 4 one-LOC sentences, 3 PER+LOC sentences, 2 empty ones."""
    return (
        [["B-PER", "I-PER", "O"]] * 6
        + [["O", "B-LOC"]] * 4
        + [["B-PER", "O", "B-LOC"]] * 3
        + [["O"]] * 2
    )


def totals(tags: list[list[str]], ids: list[int]) -> Counter[str]:
    out: Counter[str] = Counter()
    for i in ids:
        out.update(mention_counts(tags[i]))
    return out


def test_mention_counts() -> None:
    assert mention_counts(["B-PER", "I-PER", "B-PER", "O", "B-LOC"]) == {"PER": 2, "LOC": 1}


@pytest.mark.parametrize("seed", range(5))
def test_greedy_reaches_k_for_every_type(seed: int) -> None:
    tags = corpus()
    ids = greedy_at_least_k(tags, 3, seed)
    got = totals(tags, ids)
    assert got["LOC"] >= 3 and got["PER"] >= 3
    assert len(ids) == len(set(ids)) and all(0 <= i < 13 for i in ids)


def test_greedy_exact_counts_on_disjoint_types() -> None:
    tags = [["B-A"]] * 5 + [["B-B", "O", "B-B"]] * 4 + [["O"]] * 3
    ids = greedy_at_least_k(tags, 2, 0)
    # rarest type first (A: 5 mentions, B: 8); A needs 2 sentences, B needs 1 (2 mentions each)
    assert totals(tags, ids) == {"A": 2, "B": 2}
    assert len(ids) == 3


def test_greedy_is_seeded() -> None:
    tags = corpus()
    assert greedy_at_least_k(tags, 2, 1) == greedy_at_least_k(tags, 2, 1)
    assert {tuple(greedy_at_least_k(tags, 2, s)) for s in range(10)} != {
        tuple(greedy_at_least_k(tags, 2, 0))
    }


def test_k_above_supply_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"few_shot\.k=8: the training split has only 7 mentions"):
        greedy_at_least_k(corpus(), 8, 0)
