"""Structured-config schema for mtfsl: dataclasses, enums, ConfigStore registration, validation.

The YAML files under ``configs/`` hold values only; every key they may set is declared here, so
a typo'd key or a wrong type fails when Hydra composes the config. ``validate`` adds the
cross-field and range checks that types cannot express.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from mtfsl.errors import ConfigError


class ModelSource(Enum):
    """Where encoder weights and tokenizer come from."""

    PRETRAINED = "pretrained"  # from_pretrained on a local folder, package folder or hub id
    TINY = "tiny"  # randomly initialised small BERT + in-memory tokenizer (tests, smoke runs)


class DataFormat(Enum):
    """File formats a task can be read from; each maps to one reader."""

    CONLL = "conll"


class HeadKind(Enum):
    """What a task predicts; selects head, collator, decoder and metric."""

    TOKEN_CLASSIFICATION = "token_classification"


class LabelScheme(Enum):
    """Tagging scheme of a label column. AUTO detects IOB1 vs IOB2 from the file."""

    AUTO = "auto"
    IOB1 = "iob1"
    IOB2 = "iob2"


class MetricMode(Enum):
    """Entity matching: DEFAULT follows conlleval; STRICT requires well-formed IOB2 chunks."""

    DEFAULT = "default"
    STRICT = "strict"


class KShotSampler(Enum):
    """How a K-shot training subset is drawn."""

    GREEDY = "greedy"  # Yang & Katiyar 2020: at least K mentions of every entity type


class OptimizerName(Enum):
    ADAMW = "adamw"
    SGD = "sgd"


class Device(Enum):
    AUTO = "auto"  # CUDA when available, else CPU
    CPU = "cpu"
    CUDA = "cuda"


class Precision(Enum):
    AUTO = "auto"  # bf16 autocast on a GPU that supports it, else fp32
    NO = "no"
    BF16 = "bf16"
    FP16 = "fp16"


@dataclass
class TinyEncoderConfig:
    """Sizes of the randomly initialised BERT used by ``model=tiny``."""

    hidden_size: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 37
    max_position_embeddings: int = 512


@dataclass
class ModelConfig:
    source: ModelSource = ModelSource.PRETRAINED
    # A local folder, ``pkg:PACKAGE/SUBDIR`` (a folder inside an installed package) or a hub id.
    name_or_path: str = MISSING
    # Sub-tokens per window including special tokens; longer sentences are split into windows.
    max_length: int = 128
    # Sub-tokens of context kept on each side of a window's own words.
    stride: int = 16
    dropout: float = 0.1
    tokenizer_kwargs: dict[str, Any] = field(default_factory=dict)
    tiny: TinyEncoderConfig = field(default_factory=TinyEncoderConfig)


@dataclass
class SplitFiles:
    """Paths of a task's splits, relative to ``data.root`` unless absolute."""

    train: str = MISSING
    dev: str | None = None
    test: str | None = None


@dataclass
class TaskConfig:
    name: str = MISSING
    format: DataFormat = DataFormat.CONLL
    head: HeadKind = HeadKind.TOKEN_CLASSIFICATION
    files: SplitFiles = field(default_factory=SplitFiles)
    token_column: int = 0
    label_column: int = -1
    label_scheme: LabelScheme = LabelScheme.AUTO
    # Lines whose first field is this marker start a new document and are not sentences.
    doc_marker: str = "-DOCSTART-"
    # Fixed label list; null derives it from the training file (O + B-/I- of each type).
    labels: list[str] | None = None


@dataclass
class DataConfig:
    # Folder holding the task files; defaults to $MTFSL_DATA_ROOT.
    root: str | None = "${oc.env:MTFSL_DATA_ROOT,null}"
    # Where tokenised datasets are cached (keyed by content + tokenizer fingerprint).
    cache_dir: str = "${oc.env:MTFSL_CACHE_DIR,'~/.cache/mtfsl'}"


@dataclass
class FewShotConfig:
    k: int | None = None  # null = full training data
    sampler: KShotSampler = KShotSampler.GREEDY
    seed: int | None = None  # null = the run's seed


@dataclass
class OptimizerConfig:
    name: OptimizerName = OptimizerName.ADAMW
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    momentum: float = 0.9  # SGD only


@dataclass
class TrainerConfig:
    epochs: int = 3
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = 32
    eval_batch_size: int = 128
    lr: float = 1e-4  # suits the small default encoder; base-size encoders want 3e-5..5e-5
    head_lr: float | None = None  # null = lr
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float | None = 1.0
    grad_accum_steps: int = 1
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    eval_every_steps: int | None = None  # null = once per epoch
    early_stopping_patience: int | None = None  # evaluations without dev improvement
    group_by_length: bool = True  # bucket batches by length (less padding), still shuffled
    log_every_steps: int = 50


@dataclass
class HardwareConfig:
    device: Device = Device.AUTO
    precision: Precision = Precision.AUTO
    threads: int | None = None  # torch intra-op threads; null = torch's default
    num_workers: int = 0
    pad_to_multiple_of: int | None = None


@dataclass
class MetricsConfig:
    mode: MetricMode = MetricMode.DEFAULT
    # Dev metric that selects the best checkpoint (higher is better).
    select: str = "f1"


@dataclass
class TrainConfig:
    seed: int = 42
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    few_shot: FewShotConfig = field(default_factory=FewShotConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


def register_configs() -> None:
    """Put the schema into Hydra's ConfigStore; ``train.yaml`` extends it."""
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)


def _check(ok: bool, key: str, value: object, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value}: expected {expected}")


def validate(cfg: TrainConfig) -> None:
    """Range and cross-field checks that the dataclass types cannot express.

    Raises:
        ConfigError: naming the first offending key and what was expected.
    """
    t, m = cfg.trainer, cfg.model
    _check(cfg.few_shot.k is None or cfg.few_shot.k >= 1, "few_shot.k", cfg.few_shot.k, ">= 1")
    _check(t.lr > 0, "trainer.lr", t.lr, "> 0")
    _check(t.head_lr is None or t.head_lr > 0, "trainer.head_lr", t.head_lr, "> 0")
    _check(t.epochs >= 1, "trainer.epochs", t.epochs, ">= 1")
    _check(t.max_steps is None or t.max_steps >= 1, "trainer.max_steps", t.max_steps, ">= 1")
    _check(t.batch_size >= 1, "trainer.batch_size", t.batch_size, ">= 1")
    _check(t.eval_batch_size >= 1, "trainer.eval_batch_size", t.eval_batch_size, ">= 1")
    _check(t.grad_accum_steps >= 1, "trainer.grad_accum_steps", t.grad_accum_steps, ">= 1")
    _check(0 <= t.warmup_ratio <= 1, "trainer.warmup_ratio", t.warmup_ratio, "in [0, 1]")
    _check(t.weight_decay >= 0, "trainer.weight_decay", t.weight_decay, ">= 0")
    _check(
        t.max_grad_norm is None or t.max_grad_norm > 0,
        "trainer.max_grad_norm",
        t.max_grad_norm,
        "> 0 or null",
    )
    _check(
        t.eval_every_steps is None or t.eval_every_steps >= 1,
        "trainer.eval_every_steps",
        t.eval_every_steps,
        ">= 1 or null",
    )
    _check(
        t.early_stopping_patience is None or t.early_stopping_patience >= 1,
        "trainer.early_stopping_patience",
        t.early_stopping_patience,
        ">= 1 or null",
    )
    _check(t.log_every_steps >= 1, "trainer.log_every_steps", t.log_every_steps, ">= 1")
    _check(m.max_length >= 8, "model.max_length", m.max_length, ">= 8")
    _check(m.stride >= 0, "model.stride", m.stride, ">= 0")
    _check(0 <= m.dropout < 1, "model.dropout", m.dropout, "in [0, 1)")
    _check(
        cfg.hardware.threads is None or cfg.hardware.threads >= 1,
        "hardware.threads",
        cfg.hardware.threads,
        ">= 1 or null",
    )
    _check(cfg.hardware.num_workers >= 0, "hardware.num_workers", cfg.hardware.num_workers, ">= 0")
    _check(cfg.task.token_column >= 0, "task.token_column", cfg.task.token_column, ">= 0")
    _check(
        cfg.metrics.select in SELECTABLE_METRICS,
        "metrics.select",
        cfg.metrics.select,
        f"one of {sorted(SELECTABLE_METRICS)}",
    )


SELECTABLE_METRICS = frozenset({"f1", "precision", "recall", "accuracy"})
