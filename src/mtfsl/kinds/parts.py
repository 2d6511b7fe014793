"""Parts that several kinds share, each a small mixin with one job: text pairs as input
(pair classification, regression) and a pooled linear head's export (classification, pair,
regression). A kind composes the parts it needs; no kind subclasses another for them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from mtfsl.config import Pooling
from mtfsl.data.splits import Split
from mtfsl.errors import ConfigError, DataError
from mtfsl.evaluation.report import atomic_write, escape_tsv

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)


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


class _LabelIds(Protocol):
    def label_ids(self, split: Split, labels: list[str]) -> list[Any]: ...


class TextPairs:
    """Two texts per example (a premise and a hypothesis, two sentences to compare) and one
    target: read from three columns, featurised as one input with segment ids (the longer
    text cut first), given to mtfsl-predict as two tab-separated texts."""

    roles: ClassVar[tuple[str, ...]] = ("text", "text_pair", "label")
    label_role: ClassVar[str] = "label"

    def columns(self, key: str, task: Any) -> dict[str, Any]:
        from mtfsl.data.readers.base import Column

        return {
            "text": Column(f"{key}.text_column", task.text_column, "text"),
            "text_pair": Column(f"{key}.text_pair_column", task.text_pair_column, "text_pair"),
            "label": Column(f"{key}.label_column", task.label_column, "label"),
        }

    def example_input(self, values: dict[str, Any], where: str) -> Any:
        pair = (values["text"], values["text_pair"])
        for text, column in zip(pair, ("text", "text_pair"), strict=True):
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{where}: expected a non-empty {column}, found {text!r:.80}")
        return pair

    def augmentations(self, task: Any) -> frozenset[str]:
        return frozenset()  # word-level EDA would change what a pair means

    def features(
        self: _LabelIds, split, task, name, labels, tokenizer, model, cache_dir
    ) -> datasets.Dataset:
        ids = self.label_ids(split, labels)
        feats = featurize_pairs(split.inputs, ids, tokenizer, model.max_length, cache_dir)
        if n := sum(feats["truncated"]):
            log.warning(
                "%s: %d of %d pairs are longer than model.max_length=%d; the longer text of "
                "each was cut first (labels kept)",
                split.path,
                n,
                len(split),
                model.max_length,
            )
        return feats

    @staticmethod
    def write_pairs(path: Path, split: Split, gold: list[str], pred: list[str]) -> None:
        """``text<TAB>text_pair<TAB>gold<TAB>pred`` per example (texts escaped)."""
        rows = ["text\ttext_pair\tgold\tpred"]
        rows += [
            f"{escape_tsv(a)}\t{escape_tsv(b)}\t{g}\t{p}"
            for (a, b), g, p in zip(split.inputs, gold, pred, strict=True)
        ]
        atomic_write(path.with_name(f"{path.name}.tsv"), "\n".join(rows) + "\n")

    def raw_input(self, line: str, split_words: Any) -> tuple[Any, list[tuple[int, int]]]:
        first, tab, second = line.partition("\t")
        if not tab:
            raise DataError("expected the two texts of a pair separated by a tab")
        return (first, second), []

    def input_of(self, values: dict[str, Any]) -> tuple[Any, str, list[tuple[int, int]]]:
        pair = (values["text"], values["text_pair"])
        return pair, "\t".join(pair), []


def hf_sequence_model(task: Any, name: str, head: Any, config: Any) -> Any:
    """A pooled linear head as ``AutoModelForSequenceClassification``: BERT's pooler and
    classifier (pooling POOLER), or a decoder class's bias-free ``score`` over the last
    non-padding token (pooling LAST: ``LlamaForSequenceClassification``, Qwen2's, ...)."""
    from torch import nn
    from transformers import AutoModelForSequenceClassification

    from mtfsl.model.encoder import copy_into

    model = AutoModelForSequenceClassification.from_config(config)
    score = getattr(model, "score", None)
    if task.pooling is Pooling.POOLER and getattr(model.base_model, "pooler", None) is not None:
        copy_into(model.base_model.pooler, head.pooler, "pooler")
        model.classifier.load_state_dict(head.classifier.state_dict())
    elif task.pooling is Pooling.LAST and isinstance(score, nn.Linear) and score.bias is None:
        score.load_state_dict(head.classifier.state_dict())
    else:
        raise ConfigError(
            f"export: task '{name}' (pooling {task.pooling.name}) does not pool as "
            f"{type(model).__name__} does; exportable are pooling POOLER on an encoder, LAST "
            "on a decoder (pooling: HF chooses it; --format onnx exports this one)"
        )
    return model


class PooledExport:
    """A pooled linear head as ``AutoModelForSequenceClassification`` (``hf_sequence_model``),
    or as the run's own pooling and linear layer over the encoder in the ONNX graph."""

    def onnx_pooled(self, task, name, head, config):
        """BERT's pooler as its HF class; other pooling as the run's own pooling and linear
        layer over the encoder (the same computation, whichever HF class exists)."""
        if task.pooling is Pooling.POOLER:
            return self.export_pooled(task, name, head, config)
        from mtfsl.model.pooled_graph import PooledSequenceModel

        return PooledSequenceModel(config, head)

    def export_pooled(self, task, name, head, config):
        return hf_sequence_model(task, name, head, config)


class LabelledPairs:
    """Predictions of a text pair's label (pair and prompt-pair kinds): a TSV with both texts,
    and a record or fields per predicted pair."""

    def write_predictions(self, path: Path, split: Split, pred: list[Any]) -> None:
        TextPairs.write_pairs(path, split, split.targets, pred)

    def prediction_record(self, example: Any, pred: Any, prob: Any = None) -> dict[str, Any]:
        first, second = example.item
        record = {"text": first, "text_pair": second, "label": pred}
        return record if prob is None else {**record, "score": prob}

    def tsv_fields(self, example: Any, pred: Any) -> list[str]:
        return [*example.item, str(pred)]
