"""The training forward pass as one module call, so data parallelism sees all of it."""

from __future__ import annotations

import torch
from torch import nn

from mtfsl.model.multitask import Batch, MultiTaskModel


class Objective(nn.Module):
    """Every sampled task's loss and their weighted sum, computed inside ``forward``.

    DDP only synchronises gradients of what runs inside the wrapped module's forward; learned
    loss weights (uncertainty, softmax) are parameters, so the weighting has to run here too.
    """

    def __init__(self, model: MultiTaskModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, batches: dict[str, Batch], scales: dict[str, float] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(weighted loss to back-propagate, each task's own mean loss).

        ``scales`` multiply each task's loss before weighting; under DDP they turn the
        process-local mean into this process's share of the global mean (see ``Trainer``).
        """
        losses = {t: self.model.loss(t, self.model(t, b), b) for t, b in batches.items()}
        scaled = {t: loss * scales[t] for t, loss in losses.items()} if scales else losses
        return self.model.weighting(scaled), losses
