"""Decoder-only language models (Llama, Qwen2, Mistral, Gemma, Phi, SmolLM, ...) as shared
backbones for task heads.

What differs from an encoder, and why:

- A causal token sees only what comes before it, so sequences pool the *last* non-padding
  token (as transformers' ``LlamaForSequenceClassification`` does) and a word's label sits
  on its *last* sub-token, the first one that has seen the whole word. ``model.attention:
  BIDIRECTIONAL`` removes the causal mask instead (LS-unLLaMA; Dukic & Snajder 2024).
- Byte-level BPE tokenizers mark a word start with a space that belongs to the word's first
  piece; words handed over one by one (tagging) get that space too (``add_prefix_space``),
  so a word is cut as it is inside a sentence, not as the start of a text.
- They ship without a separator for text pairs and often without a pad token: the end-of-
  sequence token becomes both (the attention mask, never the token id, tells padding).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    LlamaConfig,
    LlamaModel,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)

from mtfsl.config import Attention, ModelConfig, Pooling, WordPiece
from mtfsl.errors import ConfigError
from mtfsl.model.backbones import register_backbone
from mtfsl.utils.tokens import special_tokens_around

_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # unk, bos, eos (SmolLM2's)


def byte_level_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer built in memory (no files, no network), laid out as
    SmolLM2's and GPT-2's: the 256 byte symbols, a merge of the word-start space with each
    ASCII letter and digit (so most words start with a piece of their own), no other merges."""
    symbols = list(pre_tokenizers.ByteLevel.alphabet())
    starts = [f"Ġ{c}" for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"]
    vocab = {tok: i for i, tok in enumerate(_SPECIALS + sorted(symbols) + starts)}
    merges = [("Ġ", tok[1:]) for tok in starts]
    backend = Tokenizer(models.BPE(vocab, merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.post_processor = processors.ByteLevel(trim_offsets=True)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(_SPECIALS)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token=_SPECIALS[0],
        bos_token=_SPECIALS[1],
        eos_token=_SPECIALS[2],
        pad_token=_SPECIALS[2],  # as SmolLM2: pad = eos
        model_max_length=8192,
    )


def _with_prefix_space(node: Any) -> Any:
    """A pre-tokenizer's JSON with every ByteLevel step adding a space before its text."""
    if isinstance(node, dict):
        node = {k: _with_prefix_space(v) for k, v in node.items()}
        if node.get("type") == "ByteLevel" and "add_prefix_space" in node:
            node["add_prefix_space"] = True
    elif isinstance(node, list):
        node = [_with_prefix_space(v) for v in node]
    return node


def _pair_template(tokenizer: PreTrainedTokenizerBase, byte_level: bool) -> Any:
    """The tokenizer's own specials around one text, and its end-of-sequence token between
    the two texts of a pair (a decoder has no [SEP]); byte-level offsets trimmed of the
    word-start space, so character spans (extractive QA) stay exact."""
    before, after = special_tokens_around(tokenizer)
    name = tokenizer.convert_ids_to_tokens
    specials = {name(i): i for i in [*before, *after, tokenizer.eos_token_id]}
    head, tail = " ".join(name(before)), " ".join(name(after))
    eos = tokenizer.eos_token
    template = processors.TemplateProcessing(
        single=f"{head} $A {tail}".strip(),
        pair=f"{head} $A {eos} $B:1 {tail}".strip(),
        special_tokens=list(specials.items()),
    )
    if not byte_level:
        return template
    return processors.Sequence([processors.ByteLevel(trim_offsets=True), template])


def _settled_word_piece(model: ModelConfig) -> WordPiece:
    return WordPiece.LAST if model.word_piece is WordPiece.AUTO else model.word_piece


class DecoderFamily:
    name = "decoder"
    masked = False
    default_pooling = Pooling.LAST
    hf_pooling = Pooling.LAST  # LlamaForSequenceClassification's

    def detects(self, config: PretrainedConfig) -> bool:
        kind = getattr(config, "model_type", "")
        return (
            kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
            and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
            and not getattr(config, "is_encoder_decoder", False)
        )

    def settle(self, model: ModelConfig) -> ModelConfig:
        attention = Attention.CAUSAL if model.attention is Attention.AUTO else model.attention
        return replace(model, attention=attention, word_piece=_settled_word_piece(model))

    def tiny(self, model: ModelConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        tokenizer = byte_level_tokenizer()
        t = model.tiny
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=t.hidden_size,
            num_hidden_layers=t.num_hidden_layers,
            num_attention_heads=t.num_attention_heads,
            num_key_value_heads=t.num_key_value_heads or t.num_attention_heads,
            intermediate_size=t.intermediate_size,
            max_position_embeddings=t.max_position_embeddings,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        return LlamaModel(config), tokenizer

    def prepare_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        if tokenizer.eos_token is None:
            raise ConfigError(
                "model.name_or_path: this decoder's tokenizer has no end-of-sequence token, "
                "which mtfsl needs as its pad token and text-pair separator"
            )
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"  # positions count from 0 in every row
        backend = tokenizer.backend_tokenizer
        layout = json.loads(backend.to_str())
        byte_level = '"ByteLevel"' in json.dumps(layout.get("pre_tokenizer"))
        if byte_level:
            layout["pre_tokenizer"] = _with_prefix_space(layout["pre_tokenizer"])
            backend.pre_tokenizer = Tokenizer.from_str(json.dumps(layout)).pre_tokenizer
            if hasattr(tokenizer, "add_prefix_space"):
                tokenizer.add_prefix_space = True  # GPT-2's class checks it for split words
        backend.post_processor = _pair_template(tokenizer, byte_level)
        # a decoder has no segment embeddings: never hand it token_type_ids
        tokenizer.model_input_names = [
            n for n in tokenizer.model_input_names if n != "token_type_ids"
        ]

    def prepare_model(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, cfg: ModelConfig
    ) -> None:
        model.config.pad_token_id = tokenizer.pad_token_id  # what HF's heads pool by
        model.config.use_cache = False  # task heads need no key/value cache
        if cfg.attention is Attention.BIDIRECTIONAL and model.config._attn_implementation not in (
            "sdpa",
            "mtfsl_sdpa",
        ):
            model.set_attn_implementation("sdpa")  # it takes the boolean full mask

    def full_mask(self, model: ModelConfig) -> bool:
        return model.attention is Attention.BIDIRECTIONAL

    def lora_targets(self, model: PreTrainedModel) -> str:
        # QLoRA's finding (Dettmers et al. 2023): adapting every linear layer, not only the
        # attention projections, is what matches full fine-tuning on decoders.
        return "all-linear"


register_backbone(DecoderFamily())
