"""A pooled text head and its encoder as one module called like a Hugging Face model: what
the ONNX graph of a classification, pair or regression task computes when its pooling is
the first token's state or the mean over tokens, which no HF class holds (BERT's pooler is
``AutoModelForSequenceClassification``'s)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from mtfsl.model.heads import SequenceClassificationHead


class PooledSequenceModel(nn.Module):
    """``logits`` (batch, labels) from the run's own pooling and linear layer, laid out as
    ``AutoModelForSequenceClassification``'s. The encoder is built from ``config`` and gets
    its weights copied in afterwards (``base_model``), as an HF class's does in export."""

    def __init__(self, config: Any, head: SequenceClassificationHead) -> None:
        from transformers import AutoModel

        super().__init__()
        self.config = config
        self.encoder = AutoModel.from_config(config)
        self.head = copy.deepcopy(head)  # the run's own stays as it is, for the check

    @property
    def base_model(self) -> nn.Module:
        return self.encoder

    def set_attn_implementation(self, name: str) -> None:
        self.encoder.set_attn_implementation(name)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        segments = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, **segments
        ).last_hidden_state
        return self.head.logits(hidden, {"attention_mask": attention_mask})
