"""Loss weighting: combine the per-task losses of a step into one loss to back-propagate.

Each strategy is an ``nn.Module`` so that learned weights live in the model (saved with it,
synchronised under DDP) and are optimised with it. Its ``name`` is what ``loss_weights.kind``
says; register a new one with ``register_weighting`` (or the ``mtfsl.weightings``
entry-point group).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from mtfsl.config import LossWeightsConfig
from mtfsl.plugins import Registry, load_entry_points


class StaticWeighting(nn.Module):
    """sum_t w_t * L_t with fixed weights (1.0 for tasks not listed)."""

    name: ClassVar[str] = "static"

    @classmethod
    def build(cls, cfg: LossWeightsConfig, tasks: list[str]) -> StaticWeighting:
        return cls(tasks, cfg.weights)

    def __init__(self, tasks: list[str], weights: dict[str, float]) -> None:
        super().__init__()
        self.static = {t: float(weights.get(t, 1.0)) for t in tasks}

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([self.static[t] * loss for t, loss in losses.items()]).sum()

    def weights(self) -> dict[str, float]:
        return dict(self.static)


class MeanWeighting(nn.Module):
    """The mean over the step's tasks of each task's mean loss."""

    name: ClassVar[str] = "mean"

    @classmethod
    def build(cls, cfg: LossWeightsConfig, tasks: list[str]) -> MeanWeighting:
        return cls(tasks)

    def __init__(self, tasks: list[str]) -> None:
        super().__init__()
        self.tasks = tasks

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack(list(losses.values())).mean()

    def weights(self) -> dict[str, float]:
        return {t: 1.0 / len(self.tasks) for t in self.tasks}


class UncertaintyWeighting(nn.Module):
    """Kendall et al. (2018): sum_t exp(-s_t) * L_t + s_t, with learned s_t = log sigma_t^2.

    (The paper's 1/2 factors, which only rescale the learning rate, are dropped, as in most
    implementations.) The effective weight of task t is exp(-s_t).
    """

    name: ClassVar[str] = "uncertainty"

    @classmethod
    def build(cls, cfg: LossWeightsConfig, tasks: list[str]) -> UncertaintyWeighting:
        return cls(tasks)

    def __init__(self, tasks: list[str]) -> None:
        super().__init__()
        self.index = {t: i for i, t in enumerate(tasks)}
        self.log_vars = nn.Parameter(torch.zeros(len(tasks)))

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        terms = [
            torch.exp(-self.log_vars[self.index[t]]) * loss + self.log_vars[self.index[t]]
            for t, loss in losses.items()
        ]
        return torch.stack(terms).sum()

    def weights(self) -> dict[str, float]:
        with torch.no_grad():
            return {t: float(torch.exp(-self.log_vars[i])) for t, i in self.index.items()}


class SoftmaxWeighting(nn.Module):
    """Learned weights n_tasks * softmax(theta): positive, mean 1, trained with the model."""

    name: ClassVar[str] = "softmax"

    @classmethod
    def build(cls, cfg: LossWeightsConfig, tasks: list[str]) -> SoftmaxWeighting:
        return cls(tasks)

    def __init__(self, tasks: list[str]) -> None:
        super().__init__()
        self.index = {t: i for i, t in enumerate(tasks)}
        self.logits = nn.Parameter(torch.zeros(len(tasks)))

    def _weights(self) -> torch.Tensor:
        return len(self.index) * torch.softmax(self.logits, dim=0)

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        w = self._weights()
        return torch.stack([w[self.index[t]] * loss for t, loss in losses.items()]).sum()

    def weights(self) -> dict[str, float]:
        with torch.no_grad():
            w = self._weights()
        return {t: float(w[i]) for t, i in self.index.items()}


Weighting = StaticWeighting | MeanWeighting | UncertaintyWeighting | SoftmaxWeighting


WEIGHTINGS: Registry[type[Weighting]] = Registry("a loss weighting")
# Make a weighting available as ``loss_weights.kind: NAME``.
register_weighting = WEIGHTINGS.add
for _weighting in (StaticWeighting, MeanWeighting, UncertaintyWeighting, SoftmaxWeighting):
    register_weighting(_weighting)
load_entry_points("mtfsl.weightings")


def weighting_type(kind: str) -> type[Weighting]:
    """The weighting ``loss_weights.kind`` names (in any case: YAMLs say STATIC)."""
    return WEIGHTINGS.named(str(kind).lower(), "loss_weights.kind")


def build_weighting(cfg: LossWeightsConfig, tasks: list[str]) -> Weighting:
    return weighting_type(cfg.kind).build(cfg, tasks)
