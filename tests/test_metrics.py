import random

import pytest

from mtfsl.config import MetricMode
from mtfsl.evaluation.metrics import entity_scores, token_accuracy, token_report
from tests.conlleval import conlleval

GOLD = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG", "O", "B-MISC"]]
PRED = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "I-ORG", "O", "O", "I-MISC"]]


def test_hand_computed_default_mode() -> None:
    # gold: PER, LOC, ORG(3 words), MISC = 4 entities. pred: PER ok, ORG(wrong type at LOC),
    # ORG(2 words: boundary wrong), MISC from a bare I- (conlleval: starts an entity) ok.
    scores = entity_scores(GOLD, PRED)
    assert scores["precision"] == pytest.approx(50.0)
    assert scores["recall"] == pytest.approx(50.0)
    assert scores["f1"] == pytest.approx(50.0)
    assert scores["accuracy"] == pytest.approx(100 * 6 / 9)


def test_strict_mode_drops_entities_that_start_with_inside() -> None:
    # strict IOB2: the bare I-MISC is not an entity, so 1 of 3 predictions is right
    scores = entity_scores(GOLD, PRED, MetricMode.STRICT)
    assert scores["precision"] == pytest.approx(100 / 3)
    assert scores["recall"] == pytest.approx(25.0)


def test_no_predicted_entities_scores_zero() -> None:
    scores = entity_scores([["B-PER"]], [["O"]])
    assert (scores["precision"], scores["recall"], scores["f1"]) == (0.0, 0.0, 0.0)


def test_token_accuracy_and_report_label_o() -> None:
    assert token_accuracy([["O", "B-PER"]], [["O", "O"]]) == 50.0
    report = token_report([["O", "B-PER"]], [["O", "O"]], ["O", "B-PER"])
    assert report.splitlines()[2].split()[:2] == ["O", "0.5000"]


@pytest.mark.parametrize("seed", range(20))
def test_default_mode_equals_conlleval_on_random_tags(seed: int) -> None:
    rng = random.Random(seed)
    tags = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-ORG"]
    gold = [[rng.choice(tags) for _ in range(rng.randint(1, 12))] for _ in range(30)]
    pred = [[t if rng.random() < 0.6 else rng.choice(tags) for t in s] for s in gold]
    ours = entity_scores(gold, pred)
    ref = conlleval([list(zip(g, p, strict=True)) for g, p in zip(gold, pred, strict=True)])
    for key in ("precision", "recall", "f1"):
        assert ours[key] == pytest.approx(ref[key], abs=1e-9)
