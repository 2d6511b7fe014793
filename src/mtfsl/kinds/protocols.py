"""What a task kind does, as six small declared protocols, and ``Kind``, all of them.

The pipeline talks to a task only through these methods: reading (``ReadsExamples``), the
model (``BuildsModel``), decoding the model's outputs (``DecodesOutputs``), scoring and
reporting (``ScoresPredictions``), and using a finished run (``ServesRuns``); ``KindSchema``
names the kind and its config. A kind is any object with these attributes and methods;
``kinds/base.py`` has default implementations of most of them as small mixins with one job
each, and a type checker (``make lint``: mypy on ``mtfsl/kinds``) checks that every
registered kind has all of them, with compatible signatures.

A task's config arrives as ``task``: the kind's own schema (a ``TaskConfig`` subclass), so
it is typed ``Any`` here and narrowed by each kind.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import numpy as np

from mtfsl.config import AugmentationConfig, MetricMode, ModelConfig

if TYPE_CHECKING:
    import datasets
    import torch
    from torch import nn
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from mtfsl.data.readers.base import Column, Records
    from mtfsl.data.splits import Split

Batch: TypeAlias = "dict[str, torch.Tensor]"


class KindSchema(Protocol):
    """The kind's name, config schema, and the fields a reader must give."""

    # Read-only: a kind sets them as class attributes.
    @property
    def name(self) -> str: ...

    @property
    def schema(self) -> type:
        """A TaskConfig subclass: stored as schema/kind/NAME."""
        ...

    @property
    def roles(self) -> tuple[str, ...]:
        """The fields a reader must give for every example, e.g. ("tokens", "tags")."""
        ...

    @property
    def label_role(self) -> str:
        """The role that holds the gold labels (optional when mtfsl-predict reads a file)."""
        ...

    @property
    def token_level(self) -> bool:
        """Examples are word sequences with a label per word (the CoNLL reader reads only
        these)."""
        ...

    def validate(self, key: str, task: Any) -> None:
        """Checks of this kind's own keys; raise ConfigError naming ``{key}.FIELD``."""
        ...

    def columns(self, key: str, task: Any) -> dict[str, Column]:
        """Per role, where a reader finds it: the config key, its value, the default name."""
        ...


class ReadsExamples(Protocol):
    """A reader's records as the kind's examples, their labels, few-shot and augmentation."""

    def to_split(self, records: Records, task: Any) -> Split: ...

    def derive_labels(self, task: Any, train: Split) -> list[str]: ...

    def labelled(self, split: Split) -> Iterator[tuple[str, int, int | None]]:
        """Every label with its example index and token position (None: the whole example)."""
        ...

    def label_counts(self, split: Split) -> dict[str, int]: ...

    def attach_context(self, split: Split, n: int, task_name: str) -> None: ...

    def samplers(self, task: Any) -> frozenset[str]: ...

    def default_sampler(self, task: Any) -> str | None: ...

    def augmentations(self, task: Any) -> frozenset[str]: ...

    def augment(
        self, split: Split, cfg: AugmentationConfig, seed: int, rewriters: Any
    ) -> tuple[Split, dict[str, int]]: ...


class BuildsModel(Protocol):
    """The task's head and the features it reads, and how the collator pads them."""

    @property
    def pad_values(self) -> dict[str, int]:
        """The pad value of each per-token list column of its features."""
        ...

    @property
    def ragged_pad_values(self) -> dict[str, int]:
        """The pad value of each list column of its own length (padded to the longest)."""
        ...

    def needs_masked_lm(self, task: Any) -> bool: ...

    def head_context(
        self, name: str, task: Any, labels: list[str], tokenizer: Any, mlm: Any
    ) -> Any: ...

    def head(
        self, task: Any, hidden: int, num_labels: int, dropout: float, context: Any
    ) -> nn.Module: ...

    def label_ids(self, split: Split, labels: list[str]) -> list[Any]: ...

    def input_embeddings(self, task: Any) -> dict[str, int]: ...

    def features(
        self,
        split: Split,
        task: Any,
        name: str,
        labels: list[str],
        tokenizer: PreTrainedTokenizerBase,
        model: ModelConfig,
        cache_dir: str | Path | None,
    ) -> datasets.Dataset: ...


class DecodesOutputs(Protocol):
    """The head's decoded outputs back to one prediction per example."""

    @property
    def pseudo_labels(self) -> bool:
        """The head gives each predicted label's probability (so the kind can self-train)."""
        ...

    def owned(self, batch: Batch, ids: torch.Tensor) -> np.ndarray: ...

    def collect(self, task: Any, rows: np.ndarray, split: Split) -> list[Any]: ...

    def collect_probabilities(self, rows: np.ndarray, split: Split) -> list[Any]: ...

    def to_labels(self, task: Any, ids: list[Any], labels: list[str]) -> list[Any]: ...

    def decision(self, pred: Any) -> Any: ...

    def calibrates(self, task: Any) -> bool: ...

    def calibrate(
        self,
        task: Any,
        head: nn.Module,
        probabilities: list[Any],
        gold: list[Any],
        labels: list[str],
    ) -> tuple[list[Any], dict[str, float]]: ...


class ScoresPredictions(Protocol):
    """Metrics, model selection, reports and predictions files."""

    def metric_names(self, task: Any) -> frozenset[str]: ...

    def default_metric(self, task: Any) -> str: ...

    def primary_metric(self, task: Any) -> str: ...

    def lower_is_better(self, metric: str) -> bool: ...

    def score(self, task: Any, gold: list[Any], pred: list[Any], mode: MetricMode) -> dict: ...

    def report(
        self,
        task: Any,
        split: str,
        name: str,
        gold: list[Any],
        pred: list[Any],
        labels: list[str],
        mode: MetricMode,
    ) -> str: ...

    def write_predictions(self, path: Path, split: Split, pred: list[Any]) -> None: ...


class ServesRuns(Protocol):
    """A finished run: its export as a Hugging Face model or ONNX graph, and mtfsl-predict's
    inputs and outputs."""

    @property
    def out_format(self) -> str:
        """What mtfsl-predict writes by default, and the suffix of predictions/ files."""
        ...

    @property
    def onnx_outputs(self) -> tuple[str, ...]:
        """The outputs of the ONNX graph, as the kind's HF class names them."""
        ...

    def export_model(
        self, task: Any, name: str, head: nn.Module, encoder: PreTrainedModel, config: Any
    ) -> PreTrainedModel: ...

    def onnx_model(
        self, task: Any, name: str, head: nn.Module, encoder: PreTrainedModel, config: Any
    ) -> nn.Module: ...

    def scores_from_outputs(self, outputs: list[np.ndarray]) -> torch.Tensor: ...

    def placeholder(self, item: Any, labels: list[str]) -> Any: ...

    def raw_input(self, line: str, split_words: Any) -> tuple[Any, list[tuple[int, int]]]: ...

    def input_of(self, values: dict[str, Any]) -> tuple[Any, str, list[tuple[int, int]]]: ...

    def prediction_record(self, example: Any, pred: Any, prob: Any = None) -> dict[str, Any]: ...

    def tsv_fields(self, example: Any, pred: Any) -> list[str]: ...

    def write_rows(self, out: Any, examples: Sequence[Any], pred: list[Any], fmt: str) -> None: ...


class Kind(
    KindSchema,
    ReadsExamples,
    BuildsModel,
    DecodesOutputs,
    ScoresPredictions,
    ServesRuns,
    Protocol,
):
    """A task kind: everything the pipeline asks of one (``register_kind`` takes these)."""
