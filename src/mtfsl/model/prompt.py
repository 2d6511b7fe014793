"""Prompt-based classification (PET, Schick & Schütze 2021; LM-BFF, Gao et al. 2021).

The text is put into a template with one mask slot; the encoder's own masked-LM head scores
the vocabulary at the mask, and each label is the score of its verbalizer word.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from mtfsl.config import PromptConfig
from mtfsl.errors import ConfigError

Batch = dict[str, torch.Tensor]


def fill_template(cfg: PromptConfig, texts: Sequence[str], mask_token: str) -> list[str]:
    return [cfg.template.format(text=text, mask=mask_token) for text in texts]


def verbalizer_ids(
    task: str, cfg: PromptConfig, labels: Sequence[str], tokenizer: PreTrainedTokenizerBase
) -> list[int]:
    """The vocabulary id of each label's verbalizer word, in label order.

    Raises:
        ConfigError: a label without a word, or a word that is not exactly one token.
    """
    key = f"task.{task}.prompt.verbalizer"
    missing = [label for label in labels if label not in cfg.verbalizer]
    if missing:
        raise ConfigError(f"{key}: no word for labels {missing[:10]} (every label needs one)")
    if tokenizer.mask_token is None:
        raise ConfigError(f"{key}: the tokenizer has no mask token, so it cannot fill a prompt")
    ids = []
    for label in labels:
        word = cfg.verbalizer[label]
        pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(pieces) != 1:
            raise ConfigError(
                f"{key}.{label}={word!r}: expected a word that is one token of the vocabulary; "
                f"it splits into {tokenizer.convert_ids_to_tokens(pieces)}"
            )
        ids.append(pieces[0])
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{key}: two labels share a verbalizer word")
    return ids


class PromptHead(nn.Module):
    """Scores of the label words at the (single) mask position of every row."""

    def __init__(self, mlm_head: nn.Module, mask_token_id: int, label_token_ids: list[int]):
        super().__init__()
        self.mlm_head = mlm_head
        self.mask_token_id = mask_token_id
        self.register_buffer("label_ids", torch.tensor(label_token_ids), persistent=False)

    def forward(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        at_mask = hidden[batch["input_ids"] == self.mask_token_id]  # (B, H): one mask per row
        return self.mlm_head(at_mask)[:, self.label_ids]

    def loss(self, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        return nn.functional.cross_entropy(scores.float(), batch["labels"])

    def loss_units(self, batch: Batch) -> torch.Tensor:
        return torch.tensor(len(batch["labels"]), device=batch["labels"].device)

    def decode(self, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        return scores.argmax(-1)
