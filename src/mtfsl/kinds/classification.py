"""Text classification: one label per text, pooled encoder states and a linear layer,
accuracy, macro-F1 and Matthews correlation, TSV prediction files."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mtfsl.config import (
    Distance,
    MetricMode,
    Pooling,
    TaskConfig,
    TextDecoder,
)
from mtfsl.data import augment
from mtfsl.data.splits import Split
from mtfsl.errors import ConfigError, DataError
from mtfsl.evaluation.metrics import label_scores
from mtfsl.evaluation.report import classification_report_text, write_tsv
from mtfsl.kinds import register_kind
from mtfsl.kinds.base import TaskKind, label_name
from mtfsl.kinds.parts import PooledExport

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)


@dataclass
class TextTaskConfig(TaskConfig):
    """What the kinds with one text and one label per example share."""

    # Where the text and the label are: a field name (csv/tsv header, jsonl, datasets) or a
    # column index (csv/tsv); null = the fields "text" and "label".
    text_column: str | None = None
    label_column: str | None = None


class TextObjective(Enum):
    """What trains the encoder of a classification task."""

    CROSS_ENTROPY = "cross_entropy"  # the linear head's cross-entropy
    # SetFit (Tunstall et al. 2022): the cosine similarity of two texts' pooled states
    # regressed to 1 (same class) or 0 (different), over every pair of texts in a batch,
    # the rarer of the two kinds repeated to as many pairs as the other (SetFit's
    # oversampling); decode with CENTROID or LOGISTIC.
    PAIRS = "pairs"


@dataclass
class ClassificationTaskConfig(TextTaskConfig):
    kind: str = "classification"
    pooling: Pooling = Pooling.AUTO  # the backbone family's: CLS for encoders, LAST for decoders
    decoder: TextDecoder = TextDecoder.LINEAR
    objective: TextObjective = TextObjective.CROSS_ENTROPY
    distance: Distance = Distance.COSINE  # CENTROID
    # LOGISTIC: the inverse regularisation strength (scikit-learn's C; 1.0 is its and
    # SetFit's default). On unit-length states a larger C fits closer: scripts/logistic_c.py
    # picks it on held-out training texts.
    logistic_c: float = 1.0


class ClassificationKind(PooledExport, TaskKind):
    name = "classification"
    schema: ClassVar[type[TaskConfig]] = ClassificationTaskConfig
    roles: ClassVar[tuple[str, ...]] = ("text", "label")
    label_role = "label"

    def columns(self, key: str, task: TextTaskConfig) -> dict[str, Any]:
        from mtfsl.data.readers.base import Column

        return {
            "text": Column(f"{key}.text_column", task.text_column, "text"),
            "label": Column(f"{key}.label_column", task.label_column, "label"),
        }

    def validate(self, key: str, task: Any) -> None:
        if not task.logistic_c > 0:
            raise ConfigError(f"{key}.logistic_c={task.logistic_c}: expected > 0")
        if task.objective is TextObjective.PAIRS and task.decoder is TextDecoder.LINEAR:
            raise ConfigError(
                f"{key}.objective=PAIRS trains no linear layer: set {key}.decoder to "
                "CENTROID or LOGISTIC (fit on the training texts' states)"
            )

    def metric_names(self, task: Any) -> frozenset[str]:
        return frozenset({"accuracy", "macro_f1", "mcc"})

    def default_metric(self, task: Any) -> str:
        return "accuracy"

    # -- data ----------------------------------------------------------------------------
    def to_split(self, records: Any, task: TextTaskConfig) -> Split:
        texts, labels, lines = [], [], []
        names = records.names.get("label") or task.label_names
        for record in records.rows:
            where = records.at(record)
            texts.append(self.example_input(record.values, where))
            label = label_name(record.values["label"], names, where)
            labels.append(task.label_map.get(label, label))
            lines.append(record.line)
        return Split(records.path, texts, labels, lines, rows=records.by_row)

    def example_input(self, values: dict[str, Any], where: str) -> Any:
        """What the model reads of one record, checked."""
        text = values["text"]
        if not isinstance(text, str):
            raise DataError(f"{where}: expected a text string, found {text!r:.80}")
        if not text.strip():
            raise DataError(f"{where}: empty text")
        return text

    def labelled(self, split: Split):
        for i, label in enumerate(split.targets):
            yield label, i, None

    def samplers(self, task: Any) -> frozenset[str]:
        return frozenset({"per_class"})

    def default_sampler(self, task: Any) -> str | None:
        return "per_class"

    def augmentations(self, task: Any) -> frozenset[str]:
        return augment.TEXT

    def augment(self, split: Split, cfg: Any, seed: int, rewriters: Any):
        return augment.augment_split(split, cfg, seed, rewriters)

    # -- model ---------------------------------------------------------------------------
    def head(
        self,
        task: ClassificationTaskConfig,
        hidden: int,
        num_labels: int,
        dropout: float,
        context: Any,
    ) -> nn.Module:
        from mtfsl.model.heads import SequenceClassificationHead

        if task.decoder is TextDecoder.LINEAR:
            return SequenceClassificationHead(hidden, num_labels, dropout, task.pooling)
        from mtfsl.model.metric_heads import MetricTextHead

        pairs = task.objective is TextObjective.PAIRS
        return MetricTextHead(
            hidden,
            num_labels,
            dropout,
            task.pooling,
            task.decoder,
            task.distance,
            pairs,
            task.logistic_c,
        )

    def label_ids(self, split: Split, labels: list[str]) -> list[Any]:
        index = {label: i for i, label in enumerate(labels)}
        return [index[label] for label in split.targets]

    def texts(self, split: Split, task: Any, tokenizer: Any) -> list[str]:
        """What the encoder reads for each example."""
        return split.inputs

    # how the log names the examples longer than model.max_length and what was done to them
    truncation: ClassVar[str] = "texts are longer than model.max_length={} and were truncated"

    def featurize(self, split, task, labels, tokenizer, model, cache_dir):
        """The features, with a ``truncated`` column marking the examples that were cut."""
        from mtfsl.data.features import featurize_texts

        texts = self.texts(split, task, tokenizer)
        ids = self.label_ids(split, labels)
        return featurize_texts(texts, ids, tokenizer, model.max_length, cache_dir)

    def features(self, split, task, name, labels, tokenizer, model, cache_dir):
        feats = self.featurize(split, task, labels, tokenizer, model, cache_dir)
        if n := sum(feats["truncated"]):
            what = self.truncation.format(model.max_length)
            log.warning("%s: %d of %d %s (labels kept)", split.path, n, len(split), what)
        return feats

    # -- evaluation ----------------------------------------------------------------------
    def score(self, task: Any, gold, pred, mode: MetricMode) -> dict:
        # Matthews correlation (x100): GLUE's CoLA metric, defined for any number of classes
        from sklearn.metrics import matthews_corrcoef

        with warnings.catch_warnings():  # one predicted class: sklearn warns and gives 0
            warnings.simplefilter("ignore")
            mcc = 100.0 * matthews_corrcoef(gold, pred)
        return {**label_scores(gold, pred), "mcc": mcc}

    def report(self, task, split, name, gold, pred, labels, mode) -> str:
        return classification_report_text(split, name, gold, pred, labels, mode)

    def write_predictions(self, path: Path, split: Split, pred: list[Any]) -> None:
        write_tsv(path.with_name(f"{path.name}.tsv"), split.inputs, split.targets, pred)

    # -- export and prediction -----------------------------------------------------------
    def export_model(self, task, name, head, encoder, config):
        self.require_linear(task, name)
        return self.export_pooled(task, name, head, config)

    def onnx_model(self, task, name, head, encoder, config):
        self.require_linear(task, name)
        return self.onnx_pooled(task, name, head, config)

    @staticmethod
    def require_linear(task: Any, name: str) -> None:
        if task.decoder is not TextDecoder.LINEAR:
            raise ConfigError(
                f"export: task '{name}' has a {task.decoder.name} decoder over normalised "
                "states, which no standard HF class holds; exportable are linear heads"
            )

    def input_of(self, values: dict[str, Any]) -> tuple[Any, str, list[tuple[int, int]]]:
        return values["text"], values["text"], []


register_kind(ClassificationKind())
