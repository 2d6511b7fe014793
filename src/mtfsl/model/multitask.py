"""The shared encoder plus a ``ModuleDict`` of task heads; ``forward(task, batch)``."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from mtfsl.config import HeadKind
from mtfsl.model.heads import HEADS


class MultiTaskModel(nn.Module):
    """One encoder shared by every task; each task owns a head chosen by its ``HeadKind``."""

    def __init__(
        self,
        encoder: PreTrainedModel,
        tasks: dict[str, tuple[HeadKind, int]],
        dropout: float,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.heads = nn.ModuleDict(
            {name: HEADS[kind](hidden, n, dropout) for name, (kind, n) in tasks.items()}
        )

    def forward(
        self, task: str, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.heads[task](hidden)

    def loss(self, task: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.heads[task].loss(logits, labels)
