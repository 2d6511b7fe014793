"""Default implementations of the task-kind protocols (``kinds/protocols.py``), as small
mixins with one job each: a kind takes the ones that fit and writes the rest.

A kind (tagging, classification, multilabel, ...) is one module in ``mtfsl.kinds`` that
defines a config schema (a ``TaskConfig`` subclass) and a class with the ``Kind`` protocol's
methods, and registers it with ``register_kind``. The pipeline (reading, few-shot,
augmentation, features, model, loop, evaluation, ``mtfsl-predict``, ``mtfsl-export``) talks to
tasks only through that protocol, so a new kind touches no other module.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from mtfsl.config import (
    AugmentationConfig,
    TaskConfig,
)
from mtfsl.errors import ConfigError, DataError
from mtfsl.kinds.protocols import Batch

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedModel

    from mtfsl.data.splits import Split

# torch, datasets and transformers are imported where used, never at the top of a kind's
# module: the CLI imports every kind to register its schema, and --help must stay fast.


def label_name(value: Any, names: list[str] | None, where: str) -> str:
    """A label as read, as a string: an integer indexes ``names`` (a dataset's ClassLabel
    names, or the task's label_names) when there are names, else it stands for itself."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"{where}: expected a label string or integer, found {value!r:.80}")
    if isinstance(value, int) and names is not None:
        if not 0 <= value < len(names):
            raise DataError(f"{where}: label id {value} outside the {len(names)} label names")
        return names[value]
    label = str(value).strip()
    if not label:
        raise DataError(f"{where}: empty label")
    return label


class _Labelled(Protocol):
    def labelled(self, split: Split) -> Iterator[tuple[str, int, int | None]]: ...


class ReadingDefaults:
    """No checks of its own, labels from the training split, no document context, no
    K-shot sampler or augmentation of its own."""

    name: ClassVar[str]
    token_level: ClassVar[bool] = False

    def validate(self, key: str, task: Any) -> None:
        """Checks of this kind's own keys; raise ConfigError naming ``{key}.FIELD``."""

    def derive_labels(self: _Labelled, task: Any, train: Split) -> list[str]:
        """The label set when the task gives none: the sorted distinct training labels."""
        return sorted({label for label, _, _ in self.labelled(train)})

    def label_counts(self: _Labelled, split: Split) -> dict[str, int]:
        """What a few-shot record counts: examples per class, or mentions per type."""
        counts: dict[str, int] = {}
        for label, _, _ in self.labelled(split):
            counts[label] = counts.get(label, 0) + 1
        return dict(sorted(counts.items()))

    def attach_context(self, split: Split, n: int, task_name: str) -> None:
        """Document context (``data.context``); kinds without it say so once."""
        if n > 0:
            from mtfsl.data.splits import warn_no_context

            warn_no_context(str(split.path), n, task_name, f"not supported by kind {self.name}")

    def samplers(self, task: Any) -> frozenset[str]:
        """The K-shot samplers that fit this kind (besides AUTO)."""
        return frozenset()

    def default_sampler(self, task: Any) -> str | None:
        return None

    def augmentations(self, task: Any) -> frozenset[str]:
        return frozenset()

    def augment(
        self, split: Split, cfg: AugmentationConfig, seed: int, rewriters: Any
    ) -> tuple[Split, dict[str, int]]:
        raise ConfigError(f"augmentation: task kind {self.name} has no augmentation methods")


class ModelDefaults:
    """A head that needs no masked-LM head and no context; no extra input columns."""

    # The pad value of each list-valued feature column the kind's features add to the tokens'
    # (``input_ids`` and ``token_type_ids`` are the collator's own): per-token labels, say.
    pad_values: ClassVar[dict[str, int]] = {}
    # The pad value of each list-valued column whose length is its own (not one per token):
    # padded to the longest in the batch.
    ragged_pad_values: ClassVar[dict[str, int]] = {}

    def needs_masked_lm(self, task: Any) -> bool:
        return False

    def head_context(self, name: str, task: Any, labels: list[str], tokenizer: Any, mlm: Any):
        """Extra inputs of the head beyond sizes (e.g. verbalizer token ids); None if none."""
        return None

    def input_embeddings(self, task: Any) -> dict[str, int]:
        """Extra per-token input columns of the task's features, each with its vocabulary
        size: the model adds a learned embedding of each to the encoder's input embeddings
        (tagging's ``case_ids``). None by default."""
        return {}


class OneLabelDecoding:
    """Decoded rows of (example, position, label id), each position predicted once; a
    label per example (or per word); no dev calibration."""

    token_level: ClassVar[bool] = False
    # The head gives each predicted label's probability, so a model can pseudo-label
    # unlabelled examples (few_shot.self_training).
    pseudo_labels: ClassVar[bool] = True

    def owned(self, batch: Batch, ids: torch.Tensor) -> np.ndarray:
        """(example, position, label id) rows for what this batch predicts; each position of
        each example is predicted by exactly one batch row."""
        import torch

        rows = [batch["sentence"], torch.zeros_like(batch["sentence"]), ids]
        if ids.is_floating_point():  # probabilities rather than label ids
            rows = [r.double() for r in rows]
        return torch.stack(rows, dim=1).cpu().numpy()

    def collect(self, task: Any, rows: np.ndarray, split: Split) -> list[Any]:
        """Per example in file order, its prediction from every batch's ``owned`` rows. By
        default rows are (example, position, label id) and each position is set once."""
        preds = self.empty_predictions(split)
        preds = self._place(preds, rows, split)
        if missing := self.unpredicted(preds):  # windowing guarantees coverage: fail loudly
            raise RuntimeError(f"{missing} items of {split.path} received no prediction")
        return self.finish_predictions(preds)

    @staticmethod
    def _place(preds: list[np.ndarray], rows: np.ndarray, split: Split) -> list[np.ndarray]:
        """``preds`` with each row's label at (example, position), in one indexed assignment
        on the examples' arrays laid end to end (a Python loop per word took 35 ms of ONNX
        int8's 2 s over the CoNLL-2003 test set). Rows are float for regression."""
        if not len(preds) or not len(rows):
            return preds
        sizes = np.fromiter((len(p) for p in preds), np.int64, len(preds))
        ends = np.cumsum(sizes)
        example, position = rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64)
        if (position < 0).any() or (position >= sizes[example]).any():
            raise RuntimeError(f"a prediction for {split.path} falls outside its example")
        flat = np.concatenate(preds)
        flat[ends[example] - sizes[example] + position] = rows[:, 2]
        return np.split(flat, ends[:-1])

    def collect_probabilities(self, rows: np.ndarray, split: Split) -> list[Any]:
        """Per example, the probability of each predicted label (``owned`` rows whose last
        column is a probability): a float, or a list per word for a tagging kind."""
        probs = [np.full(p.shape, np.nan) for p in self.empty_predictions(split)]
        probs = self._place(probs, rows, split)
        shaped = [p.tolist() for p in probs]
        return [p[0] for p in shaped] if not self.token_level else shaped

    def empty_predictions(self, split: Split) -> list[np.ndarray]:
        """Per example, an array of -1 the size of what it gets predicted."""
        return [np.full(1, -1, np.int64) for _ in split.inputs]

    def unpredicted(self, preds: list[np.ndarray]) -> int:
        """How many items of ``empty_predictions`` are still unset."""
        return sum(int((p < 0).sum()) for p in preds)

    def finish_predictions(self, preds: list[np.ndarray]) -> list[Any]:
        return [int(p[0]) for p in preds]

    def to_labels(self, task: Any, ids: list[Any], labels: list[str]) -> list[Any]:
        return [labels[i] for i in ids]

    def decision(self, pred: Any) -> Any:
        """What a prediction decides (labels, a span), without its scores: what two backends
        are compared on (the check of ``mtfsl-export --format onnx``)."""
        return pred

    def calibrates(self, task: Any) -> bool:
        """Whether the kind fits its decision rule on the dev split's outputs (``calibrate``):
        a multi-label head's threshold, say. Then every dev evaluation calls ``calibrate``."""
        return False

    def calibrate(
        self,
        task: Any,
        head: nn.Module,
        probabilities: list[Any],
        gold: list[Any],
        labels: list[str],
    ) -> tuple[list[Any], dict[str, float]]:
        """Fit the decision rule on one dev evaluation: ``probabilities`` per example (the
        head's ``probabilities``), the gold labels. Sets what it fitted on ``head`` (so the
        checkpoint keeps it), and returns the dev predictions under it (as ``collect`` gives
        them) and what was fitted, reported beside the dev metrics."""
        raise NotImplementedError


class ScoringDefaults:
    """Model selection on the task's ``select_metric`` or the kind's default; higher is
    better."""

    def default_metric(self, task: Any) -> str:
        """The kind's headline metric: what selects the checkpoint unless the task says."""
        raise NotImplementedError

    def primary_metric(self, task: Any) -> str:
        """The dev metric that selects the best checkpoint: the task's ``select_metric``, else
        the kind's default."""
        return task.select_metric or self.default_metric(task)

    def lower_is_better(self, metric: str) -> bool:
        """Whether a smaller value of ``metric`` is better (an error such as MSE); model
        selection negates such a metric."""
        return False


class TextServing:
    """A text in, a label (and its probability) out; no standard HF class unless the kind
    names one."""

    name: ClassVar[str]
    # What mtfsl-predict writes by default, and the suffix of predictions/ files.
    out_format: ClassVar[str] = "tsv"
    # The outputs of the kind's standard HF class (``export_model``), as the ONNX graph
    # names them: the HF model's own output names, which a deployment reading the graph
    # without mtfsl looks for.
    onnx_outputs: ClassVar[tuple[str, ...]] = ("logits",)

    def export_model(
        self, task: Any, name: str, head: nn.Module, encoder: PreTrainedModel, config: Any
    ) -> PreTrainedModel:
        """The task as one standard Hugging Face model with the same weights."""
        raise ConfigError(f"export: task '{name}' (kind {self.name}) has no standard HF class")

    def onnx_model(
        self, task: Any, name: str, head: nn.Module, encoder: PreTrainedModel, config: Any
    ) -> nn.Module:
        """What ``mtfsl-export --format onnx`` traces: by default ``export_model``'s HF model.
        A graph needs no HF class, as mtfsl-predict decodes its outputs with the run's own
        head, so a kind may trace a head no HF class holds (called with an HF model's
        inputs, giving ``onnx_outputs``; its ``base_model`` gets the encoder's weights)."""
        return self.export_model(task, name, head, encoder, config)

    def scores_from_outputs(self, outputs: list[np.ndarray]) -> torch.Tensor:
        """The head's scores (what its ``forward`` returns) from the exported model's outputs
        (``onnx_outputs``, in that order), so the head's own decoding can run on them."""
        import torch

        return torch.from_numpy(outputs[0])

    def placeholder(self, item: Any, labels: list[str]) -> Any:
        """A stand-in gold label for an input predicted without one (features need labels)."""
        return labels[0]

    def raw_input(self, line: str, split_words: Any) -> tuple[Any, list[tuple[int, int]]]:
        """An input from one line of raw text, and each word's character span (if words)."""
        return line, []

    def prediction_record(self, example: Any, pred: Any, prob: Any = None) -> dict[str, Any]:
        """The JSONL record mtfsl-predict writes for one example (``prob``: the predicted
        label's probability, where the head gives one)."""
        record = {"text": example.text, "label": pred}
        return record if prob is None else {**record, "score": prob}

    def tsv_fields(self, example: Any, pred: Any) -> list[str]:
        """The fields of one example's ``tsv`` row in mtfsl-predict's output."""
        return [example.text, str(pred)]

    def write_rows(self, out: Any, examples: Sequence[Any], pred: list[Any], fmt: str) -> None:
        """mtfsl-predict's ``tsv`` (or the kind's own) output."""
        from mtfsl.evaluation.report import escape_tsv

        if fmt != "tsv":
            raise ConfigError(f"--out-format {fmt}: kind {self.name} writes tsv or jsonl")
        for ex, p in zip(examples, pred, strict=True):
            out.write("\t".join(escape_tsv(f) for f in self.tsv_fields(ex, p)) + "\n")


class TaskKind(ReadingDefaults, ModelDefaults, OneLabelDecoding, ScoringDefaults, TextServing):
    """Every default above, for a kind that writes the rest: its ``name``, ``schema``,
    ``roles``, ``label_role``, ``columns``, ``to_split``, ``labelled``, ``head``,
    ``label_ids``, ``features``, ``metric_names``, ``default_metric``, ``score``, ``report``,
    ``write_predictions`` and ``input_of``."""

    schema: ClassVar[type[TaskConfig]]
    roles: ClassVar[tuple[str, ...]]
    label_role: ClassVar[str]
