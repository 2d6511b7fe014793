"""Multi-label text classification: each text has a set of labels, possibly empty.

A pooled linear layer gives one logit per label, trained with binary cross-entropy; a label
is predicted when its sigmoid probability reaches the decision threshold. With
``tune_threshold`` every dev evaluation picks the threshold (0.05 to 0.95 in steps of 0.05)
that maximises dev micro-F1; the head keeps it, so the best checkpoint, the test scores and
``mtfsl-predict`` use the threshold chosen with it. Scored by micro-, macro- and samples-F1
and exact match (scikit-learn's multi-label definitions), reported per label with
scikit-learn's ``classification_report``.

Labels come as a list (JSONL, ``datasets``) or as one string split at ``label_separator``
(CSV/TSV). The ``conll_types`` reader reads a CoNLL NER file as sentences with the set of
entity types each mentions (``task=conll_types``).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mtfsl.config import MetricMode, Pooling, TaskConfig
from mtfsl.data.splits import Split
from mtfsl.errors import ConfigError, DataError
from mtfsl.kinds import register_kind
from mtfsl.kinds.base import Batch, TaskKind, label_name

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

# The thresholds that tune_threshold tries (a grid keeps the choice stable between runs).
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))


@dataclass
class MultiLabelTaskConfig(TaskConfig):
    kind: str = "multilabel"
    # Where the text and its labels are: a field name or column index; null = the fields
    # "text" and "labels" (for the conll_types reader: the first and the last column).
    text_column: str | None = None
    label_column: str | None = None
    # A label set given as one string (CSV/TSV) is split here: "billing|refund"; "" is empty.
    label_separator: str = "|"
    pooling: Pooling = Pooling.AUTO  # the backbone family's: CLS for encoders, LAST for decoders
    # A label is predicted when its probability is at least this.
    threshold: float = 0.5
    # Choose the threshold on dev (micro-F1) at every dev evaluation, instead of ``threshold``.
    tune_threshold: bool = True


def _multi_hot(label_set: torch.Tensor, num_labels: int) -> torch.Tensor:
    """(B, labels) 0/1 from each row's label ids, padded with -1."""
    import torch

    hot = torch.zeros(len(label_set), num_labels + 1, device=label_set.device)
    index = torch.where(label_set < 0, num_labels, label_set)  # padding into a spare column
    return hot.scatter_(1, index, 1.0)[:, :num_labels]


@functools.cache
def head_type() -> type:
    """The head class, made on first use: a kind's module imports no torch at the top, since
    the CLI imports every kind and ``--help`` must stay fast."""
    import torch

    from mtfsl.model.heads import SequenceClassificationHead

    class MultiLabelHead(SequenceClassificationHead):
        """A pooled linear layer, a logit per label; binary cross-entropy; a label decided
        when its sigmoid probability is at least ``threshold`` (a buffer: checkpoints keep
        the tuned one)."""

        threshold: torch.Tensor

        def __init__(self, hidden: int, labels: int, dropout: float, pooling: Pooling, at: float):
            super().__init__(hidden, labels, dropout, pooling)
            self.register_buffer("threshold", torch.tensor(float(at)))

        def loss(self, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
            target = _multi_hot(batch["label_set"], scores.shape[-1])
            return torch.nn.functional.binary_cross_entropy_with_logits(scores.float(), target)

        def loss_units(self, batch: Batch) -> torch.Tensor:
            return torch.tensor(len(batch["label_set"]), device=batch["label_set"].device)

        def decode(self, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
            """(B, labels): 1 where the label is predicted."""
            return (scores.float().sigmoid() >= self.threshold).long()

        def probabilities(self, scores: torch.Tensor, batch: Batch, ids: torch.Tensor):
            """(B, labels): every label's probability (what the threshold is tuned on)."""
            return scores.float().sigmoid()

    return MultiLabelHead


def f1_scores(gold: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Micro-, macro- and samples-F1 and exact match (percent) of 0/1 matrices (examples x
    labels). A text with no gold and no predicted label counts as right (samples-F1 1, as
    scikit-learn's ``zero_division=1``): the empty set is an answer here."""
    from sklearn.metrics import f1_score

    if not len(gold):
        return dict.fromkeys(("micro_f1", "macro_f1", "samples_f1", "exact_match"), 0.0)
    scores = {
        f"{avg}_f1": 100.0 * f1_score(gold, pred, average=avg, zero_division=z)
        for avg, z in (("micro", 0.0), ("macro", 0.0), ("samples", 1.0))
    }
    scores["exact_match"] = 100.0 * float((gold == pred).all(1).mean())
    return scores


class MultiLabelKind(TaskKind):
    name = "multilabel"
    schema = MultiLabelTaskConfig
    roles = ("text", "labels")
    label_role = "labels"
    pseudo_labels = False  # self-training picks texts by one label's probability
    ragged_pad_values: ClassVar[dict[str, int]] = {"label_set": -1}

    def validate(self, key: str, task: MultiLabelTaskConfig) -> None:
        if not 0 < task.threshold < 1:
            raise ConfigError(f"{key}.threshold={task.threshold}: expected in (0, 1)")
        if not task.label_separator:
            raise ConfigError(f"{key}.label_separator: expected a non-empty string, e.g. '|'")

    def columns(self, key: str, task: MultiLabelTaskConfig) -> dict[str, Any]:
        from mtfsl.data.readers.base import Column

        return {
            "text": Column(f"{key}.text_column", task.text_column, "text"),
            "labels": Column(f"{key}.label_column", task.label_column, "labels"),
        }

    def metric_names(self, task: Any) -> frozenset[str]:
        return frozenset({"micro_f1", "macro_f1", "samples_f1", "exact_match"})

    def default_metric(self, task: Any) -> str:
        return "micro_f1"

    # -- data ----------------------------------------------------------------------------
    def to_split(self, records: Any, task: MultiLabelTaskConfig) -> Split:
        texts, targets, lines = [], [], []
        names = records.names.get("labels") or task.label_names
        for record in records.rows:
            where = records.at(record)
            texts.append(self.input_of(record.values)[0])
            if not isinstance(texts[-1], str) or not texts[-1].strip():
                raise DataError(f"{where}: expected a non-empty text, found {texts[-1]!r:.80}")
            found = self.label_set(record.values["labels"], task, names, where)
            targets.append(sorted({task.label_map.get(x, x) for x in found}))
            lines.append(record.line)
        return Split(records.path, texts, targets, lines, rows=records.by_row)

    @staticmethod
    def label_set(value: Any, task: MultiLabelTaskConfig, names: Any, where: str) -> list[str]:
        """A record's labels: a list, or one string split at ``label_separator``."""
        if isinstance(value, str):
            return [x.strip() for x in value.split(task.label_separator) if x.strip()]
        if not isinstance(value, list):
            raise DataError(
                f"{where}: expected a list of labels (or a '{task.label_separator}'-separated "
                f"string), found {value!r:.80}"
            )
        return [label_name(x, names, where) for x in value]

    def labelled(self, split: Split):
        for i, labels in enumerate(split.targets):
            for label in labels:
                yield label, i, None

    def samplers(self, task: Any) -> frozenset[str]:
        return frozenset({"random"})

    def default_sampler(self, task: Any) -> str | None:
        return "random"

    # -- model ---------------------------------------------------------------------------
    def head(self, task: Any, hidden: int, num_labels: int, dropout: float, context: Any):
        return head_type()(hidden, num_labels, dropout, task.pooling, task.threshold)

    def label_ids(self, split: Split, labels: list[str]) -> list[Any]:
        index = {label: i for i, label in enumerate(labels)}
        return [[index[x] for x in targets] for targets in split.targets]

    def features(self, split, task, name, labels, tokenizer, model, cache_dir):
        from mtfsl.data.features import featurize_texts

        ids = self.label_ids(split, labels)
        feats = featurize_texts(split.inputs, ids, tokenizer, model.max_length, cache_dir)
        if n := sum(feats["truncated"]):
            log.warning(
                "%s: %d of %d texts are longer than model.max_length=%d and were truncated",
                split.path,
                n,
                len(split),
                model.max_length,
            )
        # its own column name: a tagging task's "labels" are padded per token
        return feats.rename_column("labels", "label_set")

    # -- evaluation ----------------------------------------------------------------------
    def owned(self, batch: Batch, ids: torch.Tensor) -> np.ndarray:
        """(example, label, 0/1 or probability) for every label of every row."""
        import torch

        rows, labels = ids.shape
        example = batch["sentence"][:, None].expand(rows, labels)
        label = torch.arange(labels, device=ids.device)[None, :].expand(rows, labels)
        out = torch.stack([example.to(ids.dtype), label.to(ids.dtype), ids], -1)
        return out.reshape(-1, 3).double().cpu().numpy()

    @staticmethod
    def _matrix(rows: np.ndarray, split: Split, fill: float) -> np.ndarray:
        """(examples, labels) from ``owned`` rows; each example's row is set once."""
        labels = int(rows[:, 1].max()) + 1 if len(rows) else 0
        out = np.full((len(split), labels), fill)
        out[rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64)] = rows[:, 2]
        if np.isnan(out).any():
            raise RuntimeError(f"examples of {split.path} received no prediction")
        return out

    def collect(self, task: Any, rows: np.ndarray, split: Split) -> list[Any]:
        return list(self._matrix(rows, split, np.nan).astype(np.int64))

    def collect_probabilities(self, rows: np.ndarray, split: Split) -> list[Any]:
        return [p.tolist() for p in self._matrix(rows, split, np.nan)]

    def to_labels(self, task: Any, ids: list[Any], labels: list[str]) -> list[Any]:
        return [[labels[j] for j in np.flatnonzero(row)] for row in ids]

    def calibrates(self, task: MultiLabelTaskConfig) -> bool:
        return task.tune_threshold

    def calibrate(self, task, head, probabilities, gold, labels):
        """The grid threshold with the best dev micro-F1 (ties: the one nearest 0.5)."""
        probs = np.asarray(probabilities, dtype=np.float64).reshape(len(gold), len(labels))
        truth = self.binarize(gold, labels)
        best = max(
            THRESHOLDS,
            key=lambda t: (f1_scores(truth, probs >= t)["micro_f1"], -abs(t - 0.5)),
        )
        head.threshold.fill_(best)
        return list((probs >= best).astype(np.int64)), {"threshold": best}

    @staticmethod
    def binarize(sets: list[list[str]], labels: list[str]) -> np.ndarray:
        index = {label: i for i, label in enumerate(labels)}
        out = np.zeros((len(sets), len(labels)), np.int64)
        for i, found in enumerate(sets):
            out[i, [index[x] for x in found]] = 1
        return out

    def score(self, task: Any, gold, pred, mode: MetricMode) -> dict:
        # over the labels the split's gold or predictions mention: score has no label list
        labels = sorted({x for found in (*gold, *pred) for x in found})
        return f1_scores(self.binarize(gold, labels), self.binarize(pred, labels))

    def report(self, task, split, name, gold, pred, labels, mode) -> str:
        from sklearn.metrics import classification_report

        truth, guess = self.binarize(gold, labels), self.binarize(pred, labels)
        scores = f1_scores(truth, guess)
        head = f"{split} / {name}: {len(gold)} texts, {int(truth.sum())} gold labels\n"
        lines = "".join(f"{k}: {v:.2f}\n" for k, v in scores.items())
        table = classification_report(truth, guess, target_names=labels, digits=4, zero_division=0)
        empty = int(((truth.sum(1) == 0) & (guess.sum(1) == 0)).sum())
        note = (
            f"(samples_f1 counts the {empty} texts with neither gold nor predicted labels as "
            "right; the table's samples avg, scikit-learn's zero_division=0, as 0)\n"
        )
        return f"{head}\n{lines}{note}\nPer label (scikit-learn, multi-label)\n{table}"

    def write_predictions(self, path: Path, split: Split, pred: list[Any]) -> None:
        from mtfsl.evaluation.report import write_tsv

        gold, guess = self._joined(split.targets), self._joined(pred)
        write_tsv(path.with_name(f"{path.name}.tsv"), split.inputs, gold, guess)

    @staticmethod
    def _joined(sets: list[list[str]]) -> list[str]:
        """Each label set as one TSV field: ``a|b``, escaped."""
        from mtfsl.evaluation.report import escape_tsv

        return [escape_tsv("|".join(x)) for x in sets]

    # -- export and prediction -----------------------------------------------------------
    def export_model(self, task, name, head, encoder, config):
        """``AutoModelForSequenceClassification`` (``hf_sequence_model``) with
        ``problem_type="multi_label_classification"`` (a pipeline then applies sigmoids)."""
        from mtfsl.kinds.parts import hf_sequence_model

        config.problem_type = "multi_label_classification"
        config.threshold = float(head.threshold)  # the decision threshold the run used
        return hf_sequence_model(task, name, head, config)

    def onnx_model(self, task, name, head, encoder, config) -> nn.Module:
        if task.pooling is Pooling.POOLER:
            return self.export_model(task, name, head, encoder, config)
        from mtfsl.model.pooled_graph import PooledSequenceModel

        config.threshold = float(head.threshold)
        return PooledSequenceModel(config, head)

    def placeholder(self, item: Any, labels: list[str]) -> Any:
        return []

    def input_of(self, values: dict[str, Any]) -> tuple[Any, str, list[tuple[int, int]]]:
        return values["text"], values["text"], []

    def prediction_record(self, example: Any, pred: Any, prob: Any = None) -> dict[str, Any]:
        """The text, its labels and (where given) each predicted label's probability. ``prob``
        holds every label's; the predicted ones are those at or above the threshold, so the
        ``len(pred)`` largest, which in label order align with ``pred``."""
        record: dict[str, Any] = {"text": example.text, "labels": pred}
        if prob is not None:
            top = sorted(np.argsort(prob, kind="stable")[::-1][: len(pred)].tolist())
            record["scores"] = [prob[j] for j in top]
        return record

    def tsv_fields(self, example: Any, pred: Any) -> list[str]:
        return [example.text, "|".join(pred)]


register_kind(MultiLabelKind())
