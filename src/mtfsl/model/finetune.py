"""Fine-tuning modes: choose which encoder parameters train (heads always do)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model
from torch import nn

from mtfsl.config import FinetuneConfig, FinetuneMode
from mtfsl.errors import ConfigError
from mtfsl.model.multitask import MultiTaskModel

log = logging.getLogger(__name__)


def _full(model: MultiTaskModel, cfg: FinetuneConfig) -> None:
    pass


def _head_only(model: MultiTaskModel, cfg: FinetuneConfig) -> None:
    model.encoder.requires_grad_(False)


def _bitfit(model: MultiTaskModel, cfg: FinetuneConfig) -> None:
    for name, param in model.encoder.named_parameters():
        param.requires_grad_(name.endswith("bias"))


def _lora(model: MultiTaskModel, cfg: FinetuneConfig) -> None:
    lora = cfg.lora
    peft_cfg = PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
    )
    try:
        model.encoder = get_peft_model(model.encoder, peft_cfg)  # freezes the base weights
    except ValueError as err:
        raise ConfigError(
            f"finetune.lora.target_modules={list(lora.target_modules)}: {str(err).splitlines()[0]}"
        ) from None


_MODES: dict[FinetuneMode, Callable[[MultiTaskModel, FinetuneConfig], None]] = {
    FinetuneMode.FULL: _full,
    FinetuneMode.HEAD_ONLY: _head_only,
    FinetuneMode.BITFIT: _bitfit,
    FinetuneMode.LORA: _lora,
}


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def apply_finetune(model: MultiTaskModel, cfg: FinetuneConfig) -> tuple[int, int]:
    """Set which parameters train; log and return (trainable, total) parameter counts."""
    _MODES[cfg.mode](model, cfg)
    if cfg.freeze_word_embeddings:
        model.encoder.get_input_embeddings().weight.requires_grad_(False)
    trainable, total = parameter_counts(model)
    log.info(
        "fine-tuning %s: %d of %d parameters trainable (%.2f%%)",
        cfg.mode.value,
        trainable,
        total,
        100 * trainable / total,
    )
    return trainable, total
