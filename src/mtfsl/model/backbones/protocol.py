"""What a backbone family does, as one small declared protocol.

A family is a kind of pretrained network that task heads sit on: BERT-style encoders
(``encoder``), decoder-only language models (``decoder``). It knows the few things in which
they differ for mtfsl: how to recognise one from its config, the defaults it settles
(attention, the word piece that carries a word's label, sequence pooling, LoRA targets), how
its tokenizer and model are made ready for task heads, and the tiny random model that tests
and smoke runs use. Everything else (loading, heads, training) is shared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from mtfsl.config import ModelConfig, Pooling

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase


class Backbone(Protocol):
    @property
    def name(self) -> str:
        """Its name in ``model.family``."""
        ...

    @property
    def masked(self) -> bool:
        """Whether its language-model head fills a mask (encoders) rather than predicting
        the next token (decoders): where a prompt's label word goes."""
        ...

    @property
    def default_pooling(self) -> Pooling:
        """What a sequence head's ``pooling: AUTO`` becomes."""
        ...

    @property
    def hf_pooling(self) -> Pooling:
        """What ``pooling: HF`` becomes: the pooling of transformers' sequence-classification
        class for the family, which ``mtfsl-export`` writes."""
        ...

    def detects(self, config: PretrainedConfig) -> bool:
        """Whether a model with this config belongs to the family."""
        ...

    def settle(self, model: ModelConfig) -> ModelConfig:
        """``model`` with this family's values for its AUTO settings (attention, word piece);
        a ConfigError naming the key for a setting the family cannot do."""
        ...

    def tiny(self, model: ModelConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """A randomly initialised small model of the family and an in-memory tokenizer."""
        ...

    def prepare_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        """Make the tokenizer ready for task features (pad token, padding side, ...)."""
        ...

    def prepare_model(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, cfg: ModelConfig
    ) -> None:
        """Make the loaded model ready to be a shared backbone (pad id, cache, attention)."""
        ...

    def full_mask(self, model: ModelConfig) -> bool:
        """Whether the backbone must be handed a mask that lets every token see every
        non-padding token (a decoder with ``attention: BIDIRECTIONAL``)."""
        ...

    def lora_targets(self, model: PreTrainedModel) -> list[str] | str:
        """``finetune.lora.target_modules: null``: the modules LoRA adapts in this family."""
        ...
