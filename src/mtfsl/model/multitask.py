"""The shared encoder plus a ``ModuleDict`` of task heads; ``forward(task, batch)``."""

from __future__ import annotations

from collections.abc import Iterable

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
        self.input_embeddings = self._input_embeddings(tasks, hidden)

    @staticmethod
    def _input_embeddings(tasks: dict[str, tuple[TaskConfig, int]], hidden: int) -> nn.ModuleDict:
        """One embedding per extra input column that a task's kind declares (tagging's
        ``case_ids``), shared by the tasks that declare it; zero at the start, so the encoder
        first computes what it shipped with and learns how much the column matters."""
        sizes: dict[str, int] = {}
        for cfg, _ in tasks.values():
            for column, size in get_kind(cfg.kind).input_embeddings(cfg).items():
                sizes[column] = max(size, sizes.get(column, 0))
        embeddings = nn.ModuleDict({k: nn.Embedding(n, hidden) for k, n in sorted(sizes.items())})
        for embedding in embeddings.values():
            nn.init.zeros_(embedding.weight)
        return embeddings

    def encode(self, batch: Batch) -> torch.Tensor:
        # segment ids only where a task's features have them (text pairs)
        segments = {"token_type_ids": batch["token_type_ids"]} if "token_type_ids" in batch else {}
        inputs = {"input_ids": batch["input_ids"]}
        extra = [emb(batch[k]) for k, emb in self.input_embeddings.items() if k in batch]
        if extra:  # the word embeddings plus the extra columns', then the encoder as usual
            words = self.encoder.get_input_embeddings()(inputs.pop("input_ids"))
            inputs["inputs_embeds"] = words + sum(extra)
        return self.encoder(
            **inputs, attention_mask=batch["attention_mask"], **segments
        ).last_hidden_state

    def forward(self, task: str, batch: Batch) -> torch.Tensor:
        return self.heads[task](self.encode(batch), batch)

    def uses_support(self, task: str) -> bool:
        """Whether the task's head decodes by what it fits on the training split
        (``model/metric_heads.py``), so needs ``remember_support`` before evaluating."""
        return getattr(self.heads[task], "uses_support", False)

    @torch.no_grad()
    def remember_support(self, task: str, batches: Iterable[Batch]) -> int:
        """Give the task's head the states and labels of ``batches`` (its training split) as
        the encoder maps them now (every labelled word, or every text); returns how many."""
        head = self.heads[task]
        training = self.training
        self.eval()  # the states evaluation will compare with: no dropout
        states, tags, sequences = [], [], []
        for batch in batches:
            rows = head.support_rows(self.encode(batch), batch)
            states.append(rows[0].float())
            tags.append(rows[1])
            sequences += rows[2]
        head.remember(torch.cat(states), torch.cat(tags), sequences)
        self.train(training)
        return sum(len(t) for t in tags)

    def loss(self, task: str, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.heads[task].loss(scores, batch)

    def decode(self, task: str, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.heads[task].decode(scores, batch)

    def probabilities(self, task: str, scores: torch.Tensor, batch: Batch, ids: torch.Tensor):
        """The probability of each decoded id (None where the head has no distribution)."""
        return self.heads[task].probabilities(scores, batch, ids)
