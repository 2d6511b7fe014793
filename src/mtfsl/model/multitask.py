"""The shared encoder plus a ``ModuleDict`` of task heads; ``forward(task, batch)``."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from mtfsl.config import TaskConfig
from mtfsl.kinds import get_kind
from mtfsl.losses import Weighting

Batch = dict[str, torch.Tensor]


class MultiTaskModel(nn.Module):
    """One encoder shared by every task; each task owns a head chosen by its kind.

    ``weighting`` combines per-task losses; learned weights are parameters of this model.
    ``contexts`` give heads what they need beyond sizes (a prompt head: the encoder's
    masked-LM head and the verbalizer's token ids).
    """

    def __init__(
        self,
        encoder: PreTrainedModel,
        tasks: dict[str, tuple[TaskConfig, int]],
        dropout: float,
        weighting: Weighting,
        contexts: dict[str, object] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        contexts = contexts or {}
        self.heads = nn.ModuleDict(
            {
                name: get_kind(cfg.kind).head(cfg, hidden, n, dropout, contexts.get(name))
                for name, (cfg, n) in tasks.items()
            }
        )
        self.weighting = weighting

    def forward(self, task: str, batch: Batch) -> torch.Tensor:
        # segment ids only where a task's features have them (text pairs)
        segments = {"token_type_ids": batch["token_type_ids"]} if "token_type_ids" in batch else {}
        hidden = self.encoder(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **segments
        ).last_hidden_state
        return self.heads[task](hidden, batch)

    def loss(self, task: str, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.heads[task].loss(scores, batch)

    def decode(self, task: str, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.heads[task].decode(scores, batch)

    def probabilities(self, task: str, scores: torch.Tensor, batch: Batch, ids: torch.Tensor):
        """The probability of each decoded id (None where the head has no distribution)."""
        return self.heads[task].probabilities(scores, batch, ids)
