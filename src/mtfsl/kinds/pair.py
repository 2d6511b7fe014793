"""Sentence-pair classification (NLI, paraphrase: RTE, MRPC): both texts in one input, the
pooled state and a linear layer; accuracy, macro-F1 and the positive class's F1; a pair longer
than ``model.max_length`` loses sub-tokens from its longer text first, and every such pair is
counted in the log."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtfsl.config import AugMethod, Distance, MetricMode, Pooling, TaskConfig
from mtfsl.data.splits import Split
from mtfsl.errors import ConfigError, DataError
from mtfsl.evaluation.report import atomic_write, escape_tsv
from mtfsl.kinds import register_kind
from mtfsl.kinds.classification import ClassificationKind, TextDecoder, TextObjective

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedTokenizerBase


class PairFeaturizer:
    """Batched ``datasets.map`` function for text pairs: both texts in one input (with the
    tokenizer's segment ids). A pair longer than ``max_length`` loses sub-tokens from its
    longer text first (``truncation="longest_first"``); ``truncated`` marks those pairs."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        first, second = (list(side) for side in zip(*batch["words"], strict=True))
        full = self.tokenizer(first, second)["input_ids"]
        out = self.tokenizer(first, second, truncation="longest_first", max_length=self.max_length)
        columns = {
            "input_ids": out["input_ids"],
            "labels": batch["label_ids"],
            "sentence": batch["sentence"],
            "length": [len(x) for x in out["input_ids"]],
            "truncated": [len(x) > self.max_length for x in full],
        }
        if "token_type_ids" in out:
            columns["token_type_ids"] = out["token_type_ids"]
        return columns


def featurize_pairs(
    pairs: list[tuple[str, str]],
    label_ids: list[int],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    cache_dir: str | Path | None,
) -> datasets.Dataset:
    """Text pairs into one row each (``PairFeaturizer``); cached like every feature set."""
    import datasets

    from mtfsl.data.features import cached_map

    fn = PairFeaturizer(tokenizer, max_length)
    rows = [list(p) for p in pairs]
    columns = {"words": rows, "label_ids": label_ids, "sentence": list(range(len(rows)))}
    raw = datasets.Dataset.from_dict(columns)
    vocab = tokenizer.backend_tokenizer.to_str()
    key = [rows, label_ids, [], vocab, type(fn).__name__, max_length, None]
    return cached_map(fn, raw, key, cache_dir)


@dataclass
class PairTaskConfig(TaskConfig):
    kind: str = "pair"
    # Where the two texts and the label are (names or indices); null = the fields "text",
    # "text_pair" and "label".
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    pooling: Pooling = Pooling.CLS
    decoder: TextDecoder = TextDecoder.LINEAR  # as a classification task's
    objective: TextObjective = TextObjective.CROSS_ENTROPY
    distance: Distance = Distance.COSINE
    logistic_c: float = 1.0
    # The class whose F1 is reported as f1 (MRPC: "1", the paraphrases); null = none.
    positive_label: str | None = None


class PairKind(ClassificationKind):
    name = "pair"
    schema = PairTaskConfig
    roles = ("text", "text_pair", "label")
    label_role = "label"

    def columns(self, key: str, task: PairTaskConfig) -> dict[str, Any]:
        from mtfsl.data.readers.base import Column

        return {
            "text": Column(f"{key}.text_column", task.text_column, "text"),
            "text_pair": Column(f"{key}.text_pair_column", task.text_pair_column, "text_pair"),
            "label": Column(f"{key}.label_column", task.label_column, "label"),
        }

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

    # -- data ----------------------------------------------------------------------------
    def example_input(self, values: dict[str, Any], where: str) -> Any:
        pair = (values["text"], values["text_pair"])
        for text, column in zip(pair, ("text", "text_pair"), strict=True):
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{where}: expected a non-empty {column}, found {text!r:.80}")
        return pair

    def augmentations(self, task: Any) -> frozenset[AugMethod]:
        return frozenset()  # word-level EDA would change what a pair means

    # -- model ---------------------------------------------------------------------------
    truncation = "pairs are longer than model.max_length={}; the longer text of each was cut first"

    def featurize(self, split, task, labels, tokenizer, model, cache_dir):
        ids = self.label_ids(split, labels)
        return featurize_pairs(split.inputs, ids, tokenizer, model.max_length, cache_dir)

    # -- evaluation ----------------------------------------------------------------------
    def score(self, task: PairTaskConfig, gold, pred, mode: MetricMode) -> dict:
        scores = super().score(task, gold, pred, mode)
        if task.positive_label is not None:
            from sklearn.metrics import f1_score

            positive = task.positive_label
            scores["f1"] = 100.0 * f1_score(gold, pred, pos_label=positive, average="binary")
        return scores

    def write_predictions(self, path: Path, split: Split, pred: list[Any]) -> None:
        rows = ["text\ttext_pair\tgold\tpred"]
        rows += [
            f"{escape_tsv(a)}\t{escape_tsv(b)}\t{g}\t{p}"
            for (a, b), g, p in zip(split.inputs, split.targets, pred, strict=True)
        ]
        atomic_write(path.with_name(f"{path.name}.tsv"), "\n".join(rows) + "\n")

    # -- prediction ----------------------------------------------------------------------
    def raw_input(self, line: str, split_words: Any) -> tuple[Any, list[tuple[int, int]]]:
        first, tab, second = line.partition("\t")
        if not tab:
            raise DataError("expected the two texts of a pair separated by a tab")
        return (first, second), []

    def input_of(self, values: dict[str, Any]) -> tuple[Any, str, list[tuple[int, int]]]:
        pair = (values["text"], values["text_pair"])
        return pair, "\t".join(pair), []

    def prediction_record(self, example: Any, pred: Any, prob: Any = None) -> dict[str, Any]:
        first, second = example.item
        record = {"text": first, "text_pair": second, "label": pred}
        return record if prob is None else {**record, "score": prob}

    def tsv_fields(self, example: Any, pred: Any) -> list[str]:
        return [*example.item, str(pred)]


register_kind(PairKind())
