"""Prompt-based classification (PET, Schick & Schütze 2021; LM-BFF, Gao et al. 2021): the
text goes into a template with one mask slot, and the encoder's own masked-LM head scores one
verbalizer word per label at the mask."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mtfsl.errors import ConfigError, DataError
from mtfsl.kinds import register_kind
from mtfsl.kinds.classification import ClassificationKind, TextTaskConfig
from mtfsl.model.prompt import fill_template, verbalizer_ids

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

    def validate(self, key: str, task: PromptTaskConfig) -> None:
        template = task.prompt.template
        if "{text}" not in template or "{mask}" not in template:
            raise ConfigError(
                f"{key}.prompt.template={template!r}: expected a template with {{text}} and "
                "{mask} slots"
            )

    def needs_masked_lm(self, task: Any) -> bool:
        return True

    def head_context(self, name: str, task: Any, labels: list[str], tokenizer: Any, mlm: Any):
        from mtfsl.model.heads import HeadContext

        ids = verbalizer_ids(name, task.prompt, labels, tokenizer)
        return HeadContext(mlm, tokenizer.mask_token_id, ids)

    def head(
        self, task: Any, hidden: int, num_labels: int, dropout: float, context: Any
    ) -> nn.Module:
        from mtfsl.model.heads import PromptHead

        assert context is not None and len(context.label_token_ids) == num_labels
        return PromptHead(context.mlm_head, context.mask_token_id, context.label_token_ids)

    def texts(self, split: Any, task: Any, tokenizer: Any) -> list[str]:
        return fill_template(task.prompt, split.inputs, tokenizer.mask_token)

    def features(self, split, task, name, labels, tokenizer, model, cache_dir):
        feats = super().features(split, task, name, labels, tokenizer, model, cache_dir)
        mask_id = tokenizer.mask_token_id
        for row, ids in enumerate(feats["input_ids"]):  # truncation could cut the mask away
            if ids.count(mask_id) != 1:
                raise DataError(
                    f"{split.at(row)}: the prompt of task '{name}' has {ids.count(mask_id)} "
                    "mask tokens after tokenisation (expected 1): the text was truncated past "
                    "the mask or contains one; raise model.max_length or put {mask} before "
                    "{text} in the template"
                )
        return feats

    def export_model(self, task, name, head, encoder, config):
        raise ConfigError(
            f"export: task '{name}' (kind prompt) has no standard HF model class; exportable "
            "are linear tagging heads and classification tasks with pooling POOLER"
        )


register_kind(PromptKind())
