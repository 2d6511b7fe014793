"""Optimizer and learning-rate schedule from ``TrainerConfig``."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from transformers import get_linear_schedule_with_warmup

from mtfsl.config import OptimizerConfig, OptimizerName, TrainerConfig

ParamGroups = list[dict[str, object]]


def param_groups(
    model: nn.Module, cfg: TrainerConfig, weighting_lr: float | None = None
) -> ParamGroups:
    """Encoder, heads, extra input embeddings and learned loss weights may use different
    learning rates; biases, norms and loss weights get no weight decay (decay would pull the
    weights to zero)."""
    lrs = {
        "encoder": cfg.lr,
        "heads": cfg.head_lr if cfg.head_lr is not None else cfg.lr,
        "input_embeddings": cfg.input_lr,
        "weighting": weighting_lr if weighting_lr is not None else cfg.lr,
    }
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = name.split(".", 1)[0]
        no_decay = param.ndim < 2 or part == "weighting"  # biases, LayerNorm, loss weights
        groups.setdefault((part, no_decay), []).append(param)
    return [
        {
            "params": params,
            "lr": lrs.get(part, cfg.lr),
            "weight_decay": 0.0 if no_decay else cfg.weight_decay,
        }
        for (part, no_decay), params in sorted(groups.items())
    ]


def _adamw(groups: Iterable[dict[str, object]], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, betas=tuple(cfg.betas), eps=cfg.eps, fused=cfg.fused)


def _sgd(groups: Iterable[dict[str, object]], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, momentum=cfg.momentum)


_OPTIMIZERS: dict[OptimizerName, Callable[..., torch.optim.Optimizer]] = {
    OptimizerName.ADAMW: _adamw,
    OptimizerName.SGD: _sgd,
}


def build_optimizer(
    model: nn.Module, cfg: TrainerConfig, weighting_lr: float | None = None
) -> torch.optim.Optimizer:
    return _OPTIMIZERS[cfg.optimizer.name](param_groups(model, cfg, weighting_lr), cfg.optimizer)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainerConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup over ``warmup_ratio`` of the steps, then linear decay to zero."""
    warmup = round(cfg.warmup_ratio * total_steps)
    return get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
