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


Targets = list[str] | str  # module names, or peft's "all-linear"


def _full(model: MultiTaskModel, cfg: FinetuneConfig, targets: Targets) -> None:
    pass


def _head_only(model: MultiTaskModel, cfg: FinetuneConfig, targets: Targets) -> None:
    model.encoder.requires_grad_(False)


def _bitfit(model: MultiTaskModel, cfg: FinetuneConfig, targets: Targets) -> None:
    biases = [p for name, p in model.encoder.named_parameters() if name.endswith("bias")]
    if not biases:  # Llama-style decoders have none: BitFit would train nothing
        raise ConfigError(
            f"finetune=bitfit: {type(model.encoder).__name__} has no bias terms; use finetune=lora"
        )
    for name, param in model.encoder.named_parameters():
        param.requires_grad_(name.endswith("bias"))


def lora_targets(cfg: FinetuneConfig, default: Targets) -> Targets:
    """``finetune.lora.target_modules``: null is the family's ``default``, ``[all-linear]``
    peft's rule (every linear layer but the output layer), else the names."""
    names = cfg.lora.target_modules
    if names is None:
        return default
    return "all-linear" if list(names) == ["all-linear"] else list(names)


def _lora(model: MultiTaskModel, cfg: FinetuneConfig, targets: Targets) -> None:
    lora = cfg.lora
    chosen = lora_targets(cfg, targets)
    peft_cfg = PeftLoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=chosen
    )
    if getattr(model.encoder, "is_loaded_in_4bit", False):  # QLoRA: norms in fp32, and so on
        from peft import prepare_model_for_kbit_training

        model.encoder = prepare_model_for_kbit_training(
            model.encoder, use_gradient_checkpointing=False
        )
    try:
        model.encoder = get_peft_model(model.encoder, peft_cfg)  # freezes the base weights
    except ValueError as err:
        raise ConfigError(
            f"finetune.lora.target_modules={chosen}: {str(err).splitlines()[0]}"
        ) from None
    log.info("LoRA r=%d on %s", lora.r, chosen)


_MODES: dict[FinetuneMode, Callable[[MultiTaskModel, FinetuneConfig, Targets], None]] = {
    FinetuneMode.FULL: _full,
    FinetuneMode.HEAD_ONLY: _head_only,
    FinetuneMode.BITFIT: _bitfit,
    FinetuneMode.LORA: _lora,
}


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def apply_finetune(
    model: MultiTaskModel, cfg: FinetuneConfig, lora_default: Targets = "all-linear"
) -> tuple[int, int]:
    """Set which parameters train; log and return (trainable, total) parameter counts.
    ``lora_default``: what ``finetune.lora.target_modules: null`` adapts (the family's)."""
    _MODES[cfg.mode](model, cfg, lora_default)
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
