"""Prompt-based classification (PET, Schick & Schütze 2021; LM-BFF, Gao et al. 2021): the
text goes into a template with one mask slot, and the model's own language-model head scores
one verbalizer word per label there: an encoder's masked-LM head at the mask, a decoder's
next-token head after the template's last token (the slot ends the template). ``prompt_pair``
does the same for text pairs (RTE, MRPC) with ``{text_a}`` and ``{text_b}`` slots."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mtfsl.errors import ConfigError, DataError
from mtfsl.kinds import register_kind
from mtfsl.kinds.classification import ClassificationKind, TextTaskConfig
from mtfsl.kinds.parts import LabelledPairs, TextPairs
from mtfsl.model.prompt import fill_fields, verbalizer_ids

if TYPE_CHECKING:
    from torch import nn


@dataclass
class PromptConfig:
    """``template`` with ``{text}`` and ``{mask}`` slots; ``verbalizer`` maps every label to a
    word that is a single token of the encoder's vocabulary (for BPE vocabularies include the
    leading space, e.g. " great")."""

    template: str = "{text} It was {mask}."
    verbalizer: dict[str, str] = field(default_factory=dict)


@dataclass
class PromptTaskConfig(TextTaskConfig):
    kind: str = "prompt"
    prompt: PromptConfig = field(default_factory=PromptConfig)


class PromptKind(ClassificationKind):
    name = "prompt"
    schema = PromptTaskConfig

    slots: tuple[str, ...] = ("{text}",)

    def validate(self, key: str, task: PromptTaskConfig) -> None:
        template = task.prompt.template
        if any(slot not in template for slot in (*self.slots, "{mask}")):
            raise ConfigError(
                f"{key}.prompt.template={template!r}: expected a template with "
                f"{' and '.join((*self.slots, '{mask}'))} slots"
            )

    def needs_masked_lm(self, task: Any) -> bool:
        return True

    def head_context(self, name: str, task: Any, labels: list[str], tokenizer: Any, mlm: Any):
        from mtfsl.model.heads import HeadContext
        from mtfsl.utils.tokens import special_tokens_around

        next_word = mlm is not None and mlm.next_word
        if next_word and not task.prompt.template.endswith("{mask}"):
            raise ConfigError(
                f"task.{name}.prompt.template={task.prompt.template!r}: on a decoder the label "
                "word is the next token after the template, so {mask} must end it (put a "
                "leading space in the verbalizer words instead: ' great')"
            )
        ids = verbalizer_ids(name, task.prompt, labels, tokenizer, masked=not next_word)
        if next_word:
            tail = len(special_tokens_around(tokenizer)[1])
            return HeadContext(mlm.module, None, ids, tail)
        return HeadContext(mlm.module if mlm else None, tokenizer.mask_token_id, ids)

    def head(
        self, task: Any, hidden: int, num_labels: int, dropout: float, context: Any
    ) -> nn.Module:
        from mtfsl.model.heads import NextWordHead, PromptHead

        assert context is not None and len(context.label_token_ids) == num_labels
        if context.mask_token_id is None:  # a decoder: the word follows the template
            return NextWordHead(context.mlm_head, context.label_token_ids, context.tail)
        return PromptHead(context.mlm_head, context.mask_token_id, context.label_token_ids)

    def slot_values(self, example: Any) -> dict[str, str]:
        """An example's template slots."""
        return {"text": example}

    def texts(self, split: Any, task: Any, tokenizer: Any) -> list[str]:
        examples = [self.slot_values(x) for x in split.inputs]
        return fill_fields(task.prompt, examples, tokenizer.mask_token or "")

    def features(self, split, task, name, labels, tokenizer, model, cache_dir):
        feats = super().features(split, task, name, labels, tokenizer, model, cache_dir)
        mask_id = tokenizer.mask_token_id
        if mask_id is None:  # a decoder: the template's end is the slot
            self._check_ends(split, name, feats, model)
            return feats
        for row, ids in enumerate(feats["input_ids"]):  # truncation could cut the mask away
            if ids.count(mask_id) != 1:
                raise DataError(
                    f"{split.at(row)}: the prompt of task '{name}' has {ids.count(mask_id)} "
                    "mask tokens after tokenisation (expected 1): the text was truncated past "
                    "the mask or contains one; raise model.max_length or put {mask} before "
                    "{text} in the template"
                )
        return feats

    @staticmethod
    def _check_ends(split, name, feats, model) -> None:
        """A template that ends in its slot (every decoder prompt) must not lose its end."""
        for row, cut in enumerate(feats["truncated"]):
            if cut:
                raise DataError(
                    f"{split.at(row)}: the prompt of task '{name}' is longer than "
                    f"model.max_length={model.max_length} and would lose its end, where the "
                    "label word goes; raise model.max_length"
                )

    def export_model(self, task, name, head, encoder, config):
        raise ConfigError(
            f"export: task '{name}' (kind prompt) has no standard HF model class; exportable "
            "are linear tagging heads and classification tasks with pooling POOLER"
        )


@dataclass
class PromptPairTaskConfig(PromptTaskConfig):
    kind: str = "prompt_pair"
    text_pair_column: str | None = None  # the second text; null = the field "text_pair"
    prompt: PromptConfig = field(
        default_factory=lambda: PromptConfig(template="{text_a} ?{mask}, {text_b}")
    )


class PromptPairKind(LabelledPairs, TextPairs, PromptKind):
    """A prompt task over text pairs (LM-BFF's RTE and MRPC templates): read as a pair kind,
    the two texts filled into ``{text_a}`` and ``{text_b}`` as one text."""

    name = "prompt_pair"
    schema = PromptPairTaskConfig
    slots = ("{text_a}", "{text_b}")

    def slot_values(self, example: Any) -> dict[str, str]:
        return {"text_a": example[0], "text_b": example[1]}

    def features(self, split, task, name, labels, tokenizer, model, cache_dir):
        return PromptKind.features(self, split, task, name, labels, tokenizer, model, cache_dir)


register_kind(PromptKind())
register_kind(PromptPairKind())
