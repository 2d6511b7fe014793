"""Task heads, keyed by ``HeadKind``: each maps encoder states to logits and a loss."""

from __future__ import annotations

import torch
from torch import nn

from mtfsl.config import HeadKind
from mtfsl.data.features import IGNORE_INDEX


class TokenClassificationHead(nn.Module):
    """Dropout + linear layer over every sub-token; loss on labelled positions only."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(hidden))

    @staticmethod
    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # Mean over labelled words: first sub-tokens of owned words, not context or padding.
        return nn.functional.cross_entropy(
            logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX
        )


HEADS: dict[HeadKind, type[TokenClassificationHead]] = {
    HeadKind.TOKEN_CLASSIFICATION: TokenClassificationHead,
}
