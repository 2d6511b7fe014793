"""BERT-style encoders (BERT, RoBERTa, MPNet, ...): every token attends to every other, the
first sub-token of a word carries its label, sequences pool the first ([CLS]) token."""

from __future__ import annotations

import string
from dataclasses import replace

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from torch import nn
from transformers import (
    BertConfig,
    BertModel,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from mtfsl.config import Attention, ModelConfig, Pooling, WordPiece
from mtfsl.errors import ConfigError
from mtfsl.model.backbones import register_backbone

_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# The attention projections LoRA adapts by default, per naming convention: BERT/RoBERTa's,
# MPNet's, and the q/k/v of most other architectures (peft's own table adapts fewer).
ATTENTION_PROJECTIONS = (
    ("query", "key", "value"),
    ("q", "k", "v"),
    ("q_proj", "k_proj", "v_proj"),
    ("q_lin", "k_lin", "v_lin"),
)


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


def tiny_config(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> BertConfig:
    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.tiny.hidden_size,
        num_hidden_layers=cfg.tiny.num_hidden_layers,
        num_attention_heads=cfg.tiny.num_attention_heads,
        intermediate_size=cfg.tiny.intermediate_size,
        max_position_embeddings=cfg.tiny.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
    )


def attention_projections(model: nn.Module) -> list[str] | str:
    """The names of ``model``'s attention projections (the first convention it uses);
    peft's "all-linear" for an architecture whose names none of them match."""
    leaves = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if _linear(m)}
    for names in ATTENTION_PROJECTIONS:
        if set(names) <= leaves:
            return list(names)
    return "all-linear"


def _linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"  # GPT-2's


class EncoderFamily:
    name = "encoder"
    masked = True
    default_pooling = Pooling.CLS
    hf_pooling = Pooling.POOLER  # BertForSequenceClassification's

    def detects(self, config: PretrainedConfig) -> bool:
        return not getattr(config, "is_encoder_decoder", False)

    def settle(self, model: ModelConfig) -> ModelConfig:
        if model.attention is Attention.CAUSAL:
            raise ConfigError(
                "model.attention=CAUSAL: an encoder attends both ways and has no causal mode; "
                "use AUTO or BIDIRECTIONAL"
            )
        word = FIRST if model.word_piece is WordPiece.AUTO else model.word_piece
        return replace(model, attention=Attention.BIDIRECTIONAL, word_piece=word)

    def tiny(self, model: ModelConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        tokenizer = tiny_tokenizer()
        return BertModel(tiny_config(model, tokenizer), add_pooling_layer=False), tokenizer

    def prepare_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        pass  # encoders ship with [PAD], [CLS] and [SEP]

    def prepare_model(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, cfg: ModelConfig
    ) -> None:
        if getattr(model, "pooler", None) is not None:
            # Heads pool for themselves; an unused pooler costs compute and, under DDP,
            # parameters without gradients. BERT-family models skip a pooler set to None.
            model.pooler = None

    def full_mask(self, model: ModelConfig) -> bool:
        return False  # an encoder builds its own (padding-only) mask

    def lora_targets(self, model: PreTrainedModel) -> list[str] | str:
        return attention_projections(model)


FIRST = WordPiece.FIRST

register_backbone(EncoderFamily())
