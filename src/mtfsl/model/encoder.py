"""Build the encoder and its tokenizer: pretrained (offline-capable) or a tiny random BERT."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoTokenizer,
    BertForMaskedLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from mtfsl.config import ModelConfig, ModelSource
from mtfsl.errors import ConfigError
from mtfsl.model.backbones import family, settle
from mtfsl.model.backbones.encoder import tiny_config, tiny_tokenizer
from mtfsl.model.sources import model_folder

Built = tuple[PreTrainedModel, PreTrainedTokenizerBase]
MaskedLM = tuple[PreTrainedModel, nn.Module, PreTrainedTokenizerBase]  # encoder, MLM head, tok
__all__ = ["build_causal_lm", "build_encoder", "build_masked_lm", "copy_into", "tiny_tokenizer"]


def _pretrained_path(cfg: ModelConfig) -> str:
    return model_folder(cfg.name_or_path)


def _load(cfg: ModelConfig, path: str, loader: Callable[[], Any]) -> Any:
    try:
        return loader()
    except OSError as err:
        where = "a local folder" if Path(path).exists() else "a hub id (needs network access)"
        raise ConfigError(
            f"model.name_or_path={cfg.name_or_path}: cannot load it as {where}: "
            f"{str(err).splitlines()[0]}"
        ) from None


def _tokenizer(cfg: ModelConfig, path: str) -> PreTrainedTokenizerBase:
    tokenizer = _load(
        cfg, path, lambda: AutoTokenizer.from_pretrained(path, **cfg.tokenizer.kwargs())
    )
    if not tokenizer.is_fast:
        raise ConfigError(
            f"model.name_or_path={cfg.name_or_path}: a fast tokenizer is required "
            "(word alignment uses word_ids())"
        )
    return tokenizer


def _pretrained(cfg: ModelConfig) -> Built:
    path = _pretrained_path(cfg)
    # fp32 weights whatever the folder holds: mixed precision comes from autocast
    # (hardware.precision), and optimizer steps on bf16 weights would lose small updates
    options = _four_bit() if cfg.load_in_4bit else {"dtype": torch.float32}
    tokenizer = _tokenizer(cfg, path)
    model = _load(cfg, path, lambda: AutoModel.from_pretrained(path, **options))
    return model, tokenizer


def _four_bit() -> dict[str, Any]:
    """``from_pretrained`` options of a QLoRA base: NF4 weights, double quantization, bf16
    compute (Dettmers et al. 2023); a ConfigError where that cannot run."""
    if not torch.cuda.is_available():
        raise ConfigError(
            "model.load_in_4bit=true: 4-bit (QLoRA) weights run on a CUDA GPU through "
            "bitsandbytes, and this machine has none; use finetune=lora without it"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ConfigError(
            "model.load_in_4bit=true: needs bitsandbytes (pip install bitsandbytes)"
        ) from None
    from transformers import BitsAndBytesConfig

    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    return {"quantization_config": quantization, "dtype": torch.bfloat16}


def _tiny(cfg: ModelConfig) -> Built:
    if cfg.load_in_4bit:
        raise ConfigError("model.load_in_4bit=true: the tiny random models are not quantized")
    return family(cfg).tiny(cfg)


def split_masked_lm(model: PreTrainedModel, name: str) -> tuple[PreTrainedModel, nn.Module]:
    """(encoder, masked-LM head) of a ``...ForMaskedLM`` model whose head is one module
    (BERT's ``cls``, RoBERTa's and MPNet's ``lm_head``): hidden states -> vocabulary scores."""
    base = model.base_model
    heads = [m for m in model.children() if m is not base and any(True for _ in m.parameters())]
    if len(heads) != 1:
        raise ConfigError(
            f"model.name_or_path={name}: prompt tasks need a masked-LM head that is one module "
            f"(found {len(heads)} in {type(model).__name__})"
        )
    return base, heads[0]


def _pretrained_mlm(cfg: ModelConfig) -> MaskedLM:
    path = _pretrained_path(cfg)
    tokenizer = _tokenizer(cfg, path)
    model, info = _load(
        cfg, path, lambda: AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True)
    )
    prefix = f"{model.base_model_prefix}."
    untrained = [k for k in info["missing_keys"] if not k.startswith(prefix)]
    if untrained:
        raise ConfigError(
            f"model.name_or_path={cfg.name_or_path}: a PROMPT task needs the encoder's "
            f"masked-LM head, but this model has no trained one (missing: {untrained[0]}, ...); "
            "use a SEQUENCE_CLASSIFICATION head or a model with an MLM head"
        )
    return *split_masked_lm(model, cfg.name_or_path), tokenizer


def _tiny_mlm(cfg: ModelConfig) -> MaskedLM:
    tokenizer = tiny_tokenizer()
    model = BertForMaskedLM(tiny_config(cfg, tokenizer))
    return *split_masked_lm(model, cfg.name_or_path), tokenizer


_BUILDERS: dict[ModelSource, Callable[[ModelConfig], Built]] = {
    ModelSource.PRETRAINED: _pretrained,
    ModelSource.TINY: _tiny,
}


def _causal_lm(cfg: ModelConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A decoder under its language-model head. The tiny model's decoder is the seeded random
    one ``build_encoder`` builds, under a random head."""
    if cfg.source is ModelSource.TINY:
        base, tokenizer = family(cfg).tiny(cfg)
        model = AutoModelForCausalLM.from_config(base.config)
        setattr(model, model.base_model_prefix, base)
        return model, tokenizer
    path = _pretrained_path(cfg)
    tokenizer = _tokenizer(cfg, path)
    options = {"dtype": torch.float32}
    model = _load(cfg, path, lambda: AutoModelForCausalLM.from_pretrained(path, **options))
    return model, tokenizer


def _next_word(cfg: ModelConfig) -> MaskedLM:
    """(decoder, next-token head, tokenizer): a PROMPT task on a decoder."""
    model, tokenizer = _causal_lm(cfg)
    return model.base_model, model.get_output_embeddings(), tokenizer


# The language-model head a PROMPT task scores verbalizers with, by backbone family: an
# encoder's masked-LM head, a decoder's next-token head.
_LM_HEAD_BUILDERS: dict[str, dict[ModelSource, Callable[[ModelConfig], MaskedLM]]] = {
    "encoder": {ModelSource.PRETRAINED: _pretrained_mlm, ModelSource.TINY: _tiny_mlm},
    "decoder": {ModelSource.PRETRAINED: _next_word, ModelSource.TINY: _next_word},
}


def build_encoder(cfg: ModelConfig) -> Built:
    """Return (encoder, fast tokenizer) for the configured model source.

    Raises:
        ConfigError: the model cannot be found or loaded, with the reason.
    """
    cfg = settle(cfg)
    encoder, tokenizer = _BUILDERS[cfg.source](cfg)
    return _finish(encoder, tokenizer, cfg), tokenizer


def build_masked_lm(cfg: ModelConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, Any]:
    """Like ``build_encoder``, plus the model's language-model head (for PROMPT tasks): an
    encoder's masked-LM head, a decoder's next-token head.

    Raises:
        ConfigError: the model has no trained masked-LM head, or cannot be loaded.
    """
    cfg = settle(cfg)
    if cfg.family not in _LM_HEAD_BUILDERS:
        raise ConfigError(
            f"model.family={cfg.family}: PROMPT tasks score verbalizers with a language-model "
            f"head, which mtfsl takes from {sorted(_LM_HEAD_BUILDERS)} models only"
        )
    from mtfsl.model.heads import LanguageModelHead

    encoder, head, tokenizer = _LM_HEAD_BUILDERS[cfg.family][cfg.source](cfg)
    lm_head = LanguageModelHead(head, next_word=not family(cfg).masked)
    return _finish(encoder, tokenizer, cfg), tokenizer, lm_head


def _finish(
    encoder: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, cfg: ModelConfig
) -> PreTrainedModel:
    backbone = family(cfg)
    backbone.prepare_tokenizer(tokenizer)
    backbone.prepare_model(encoder, tokenizer, cfg)
    if cfg.encoder_dropout is not None:
        for module in encoder.modules():
            if isinstance(module, nn.Dropout):
                module.p = cfg.encoder_dropout
    limit = getattr(encoder.config, "max_position_embeddings", None)
    if limit is not None and cfg.max_length > limit:
        raise ConfigError(
            f"model.max_length={cfg.max_length}: expected <= {limit}, the encoder's "
            "max_position_embeddings"
        )
    return encoder


def copy_into(target: nn.Module, source: nn.Module, what: str) -> None:
    """Load ``source``'s weights into ``target`` (an HF model's part); the layouts must fit."""
    missing, unexpected = target.load_state_dict(source.state_dict(), strict=False)
    if unexpected or [k for k in missing if "pooler" not in k]:
        raise ConfigError(
            f"export: the {what} does not fit the HF layout ({missing or unexpected})"
        )


def build_causal_lm(cfg: ModelConfig) -> Built:
    """A decoder with its language-model head (in-context learning) and its tokenizer, in
    evaluation mode with its KV cache on."""
    model, tokenizer = _causal_lm(cfg)
    family(cfg).prepare_tokenizer(tokenizer)
    model.config.use_cache = True
    return model.eval(), tokenizer
