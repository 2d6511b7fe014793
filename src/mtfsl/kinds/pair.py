"""Sentence-pair classification (NLI, paraphrase: RTE, MRPC): both texts in one input, the
pooled state and a linear layer; accuracy, macro-F1 and the positive class's F1; a pair longer
than ``model.max_length`` loses sub-tokens from its longer text first, and every such pair is
counted in the log."""

from __future__ import annotations

from dataclasses import dataclass

from mtfsl.config import Distance, MetricMode, Pooling, TaskConfig
from mtfsl.errors import ConfigError
from mtfsl.kinds import register_kind
from mtfsl.kinds.classification import ClassificationKind, TextDecoder, TextObjective
from mtfsl.kinds.parts import LabelledPairs, TextPairs


@dataclass
class PairTaskConfig(TaskConfig):
    kind: str = "pair"
    # Where the two texts and the label are (names or indices); null = the fields "text",
    # "text_pair" and "label".
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    pooling: Pooling = Pooling.AUTO  # the backbone family's: CLS for encoders, LAST for decoders
    decoder: TextDecoder = TextDecoder.LINEAR  # as a classification task's
    objective: TextObjective = TextObjective.CROSS_ENTROPY
    distance: Distance = Distance.COSINE
    logistic_c: float = 1.0
    # The class whose F1 is reported as f1 (MRPC: "1", the paraphrases); null = none.
    positive_label: str | None = None


class PairKind(LabelledPairs, TextPairs, ClassificationKind):
    """A classification kind whose input is a text pair (``TextPairs``)."""

    name = "pair"
    schema = PairTaskConfig

    def validate(self, key: str, task: PairTaskConfig) -> None:
        super().validate(key, task)
        if (
            task.positive_label is not None
            and task.labels
            and task.positive_label not in task.labels
        ):
            raise ConfigError(
                f"{key}.positive_label={task.positive_label}: not one of {key}.labels {task.labels}"
            )

    def metric_names(self, task: PairTaskConfig) -> frozenset[str]:
        extra = {"f1"} if task.positive_label is not None else set()
        return super().metric_names(task) | extra

    # -- evaluation ----------------------------------------------------------------------
    def score(self, task: PairTaskConfig, gold, pred, mode: MetricMode) -> dict:
        scores = super().score(task, gold, pred, mode)
        if task.positive_label is not None:
            from sklearn.metrics import f1_score

            positive = task.positive_label
            scores["f1"] = 100.0 * f1_score(gold, pred, pos_label=positive, average="binary")
        return scores


register_kind(PairKind())
