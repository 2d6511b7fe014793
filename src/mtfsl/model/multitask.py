"""The shared encoder plus a ``ModuleDict`` of task heads; ``forward(task, batch)``."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from transformers import PreTrainedModel

from mtfsl.losses import Weighting

Batch = dict[str, torch.Tensor]


class MultiTaskModel(nn.Module):
    """One encoder shared by every task, and each task's head (built by its kind:
    ``model.build``). ``weighting`` combines per-task losses; learned weights are parameters
    of this model. ``input_embeddings``: the vocabulary size of each extra per-token input
    column that a task's features carry (tagging's ``case_ids``). ``full_mask``: hand the
    encoder a (B, 1, T, T) mask that lets every token see every non-padding one, which
    replaces a decoder's causal mask (``model.attention: BIDIRECTIONAL``).
    """

    def __init__(
        self,
        encoder: PreTrainedModel,
        heads: dict[str, nn.Module],
        weighting: Weighting,
        input_embeddings: dict[str, int] | None = None,
        full_mask: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.full_mask = full_mask
        self.heads = nn.ModuleDict(heads)
        self.weighting = weighting
        self.input_embeddings = self._input_embeddings(
            input_embeddings or {}, encoder.config.hidden_size
        )

    @staticmethod
    def _input_embeddings(sizes: dict[str, int], hidden: int) -> nn.ModuleDict:
        """One embedding per extra input column, shared by the tasks whose features have it;
        zero at the start, so the encoder first computes what it shipped with and learns how
        much the column matters."""
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
        mask = batch["attention_mask"]
        if self.full_mask:  # transformers uses a 4-D mask as given: no causal part
            mask = mask.bool()[:, None, None, :].expand(-1, 1, mask.shape[1], -1)
        return self.encoder(**inputs, attention_mask=mask, **segments).last_hidden_state

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
