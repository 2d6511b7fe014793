"""Pure metric functions: (gold tags, predicted tags) -> scores and report text.

Entity scores use seqeval; its default mode reproduces the official ``conlleval`` script
(an ``I-X`` after ``O`` starts a new entity). All scores are percentages.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

# seqeval and scikit-learn are imported in the functions that use them: importing them costs
# seconds, which every mtfsl-train --help and shell completion would otherwise pay.
from mtfsl.config import MetricMode

Tags = Sequence[Sequence[str]]


def _mode_kwargs(mode: MetricMode) -> dict[str, object]:
    from seqeval.scheme import IOB2

    return {"mode": "strict", "scheme": IOB2} if mode is MetricMode.STRICT else {}


def token_accuracy(gold: Tags, pred: Tags) -> float:
    pairs = [(g, p) for gs, ps in zip(gold, pred, strict=True) for g, p in zip(gs, ps, strict=True)]
    return 100.0 * sum(g == p for g, p in pairs) / max(len(pairs), 1)


def entity_scores(
    gold: Tags, pred: Tags, mode: MetricMode = MetricMode.DEFAULT
) -> dict[str, float]:
    """Micro-averaged entity precision, recall, F1 and token accuracy, in percent.

    One seqeval pass for all three (its precision_score / recall_score / f1_score would each
    extract every entity again: seconds on a full test set)."""
    from seqeval.metrics.sequence_labeling import precision_recall_fscore_support as prfs
    from seqeval.metrics.v1 import precision_recall_fscore_support as strict_prfs
    from seqeval.scheme import IOB2

    gold, pred = [list(s) for s in gold], [list(s) for s in pred]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero predicted entities: score 0, not a warning
        if mode is MetricMode.STRICT:
            p, r, f, _ = strict_prfs(gold, pred, average="micro", zero_division=0, scheme=IOB2)
        else:
            p, r, f, _ = prfs(gold, pred, average="micro", zero_division=0)
    return {
        "precision": 100.0 * p,
        "recall": 100.0 * r,
        "f1": 100.0 * f,
        "accuracy": token_accuracy(gold, pred),
    }


def entity_report(gold: Tags, pred: Tags, mode: MetricMode = MetricMode.DEFAULT) -> str:
    """seqeval's per-type entity report (what papers call F1)."""
    from seqeval.metrics import classification_report as entity_classification_report

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return entity_classification_report(
            [list(s) for s in gold],
            [list(s) for s in pred],
            digits=4,
            zero_division=0,
            **_mode_kwargs(mode),
        )


def flatten(tags: Tags) -> list[str]:
    """All tags of all sentences, in order."""
    return [t for s in tags for t in s]


def token_report(gold: Tags, pred: Tags, labels: Sequence[str]) -> str:
    """scikit-learn's per-tag report over every word, the ``O`` tag included."""
    return label_report(flatten(gold), flatten(pred), labels)


def label_scores(gold: Sequence[str], pred: Sequence[str]) -> dict[str, float]:
    """Accuracy and macro-F1 (percent) of one label per item: a class or a word's tag."""
    from sklearn.metrics import accuracy_score
    from sklearn.metrics import f1_score as f1_score_sk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "accuracy": 100.0 * accuracy_score(gold, pred),
            "macro_f1": 100.0 * f1_score_sk(gold, pred, average="macro", zero_division=0),
        }


def label_report(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> str:
    """scikit-learn's per-label report."""
    from sklearn.metrics import classification_report as sk_classification_report

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sk_classification_report(gold, pred, labels=list(labels), digits=4, zero_division=0)
