"""Build the encoder and its tokenizer: pretrained (offline-capable) or a tiny random BERT."""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from torch import nn
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    BertModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from mtfsl.config import ModelConfig, ModelSource
from mtfsl.errors import ConfigError
from mtfsl.model.sources import resolve_model_path

Built = tuple[PreTrainedModel, PreTrainedTokenizerBase]
MaskedLM = tuple[PreTrainedModel, nn.Module, PreTrainedTokenizerBase]  # encoder, MLM head, tok
_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _pretrained_path(cfg: ModelConfig) -> str:
    path = resolve_model_path(cfg.name_or_path)
    if path.startswith(("/", ".", "~")) and not Path(path).expanduser().is_dir():
        raise ConfigError(f"model.name_or_path={cfg.name_or_path}: no such folder")
    return str(Path(path).expanduser()) if path.startswith("~") else path


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
    tokenizer = _tokenizer(cfg, path)
    return _load(cfg, path, lambda: AutoModel.from_pretrained(path)), tokenizer


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """An uncased character-level WordPiece tokenizer built in memory (no files, no network).

    Its vocabulary is the special tokens plus every printable ASCII character, alone and as a
    ``##`` continuation, so any word splits into characters and other text becomes [UNK].
    """
    chars = [c for c in string.printable if not c.isspace() and not c.isupper()]
    vocab = {tok: i for i, tok in enumerate(_SPECIALS + chars + [f"##{c}" for c in chars])}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    backend.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )


def _tiny_config(cfg: ModelConfig, tokenizer: PreTrainedTokenizerFast) -> BertConfig:
    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.tiny.hidden_size,
        num_hidden_layers=cfg.tiny.num_hidden_layers,
        num_attention_heads=cfg.tiny.num_attention_heads,
        intermediate_size=cfg.tiny.intermediate_size,
        max_position_embeddings=cfg.tiny.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
    )


def _tiny(cfg: ModelConfig) -> Built:
    tokenizer = tiny_tokenizer()
    return BertModel(_tiny_config(cfg, tokenizer), add_pooling_layer=False), tokenizer


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
    model = BertForMaskedLM(_tiny_config(cfg, tokenizer))
    return *split_masked_lm(model, cfg.name_or_path), tokenizer


_BUILDERS: dict[ModelSource, Callable[[ModelConfig], Built]] = {
    ModelSource.PRETRAINED: _pretrained,
    ModelSource.TINY: _tiny,
}
_MLM_BUILDERS = {ModelSource.PRETRAINED: _pretrained_mlm, ModelSource.TINY: _tiny_mlm}


def build_encoder(cfg: ModelConfig) -> Built:
    """Return (encoder, fast tokenizer) for the configured model source.

    Raises:
        ConfigError: the model cannot be found or loaded, with the reason.
    """
    encoder, tokenizer = _BUILDERS[cfg.source](cfg)
    return _finish(encoder, cfg), tokenizer


def build_masked_lm(
    cfg: ModelConfig,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, nn.Module]:
    """Like ``build_encoder``, plus the model's masked-LM head (for PROMPT tasks).

    Raises:
        ConfigError: the model has no trained masked-LM head, or cannot be loaded.
    """
    encoder, head, tokenizer = _MLM_BUILDERS[cfg.source](cfg)
    return _finish(encoder, cfg), tokenizer, head


def _finish(encoder: PreTrainedModel, cfg: ModelConfig) -> PreTrainedModel:
    if getattr(encoder, "pooler", None) is not None:
        # Heads pool for themselves; an unused pooler costs compute and, under DDP, parameters
        # without gradients. BERT-family models skip a pooler set to None.
        encoder.pooler = None
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
