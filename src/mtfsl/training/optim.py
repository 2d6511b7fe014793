"""Optimizer and learning-rate schedule from ``TrainerConfig``."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from transformers import get_linear_schedule_with_warmup

from mtfsl.config import OptimizerConfig, OptimizerName, TrainerConfig

ParamGroups = list[dict[str, object]]


def param_groups(model: nn.Module, cfg: TrainerConfig) -> ParamGroups:
    """Encoder and heads may use different learning rates; biases and norms get no decay."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_head = name.startswith("heads.")
        no_decay = param.ndim < 2  # biases and LayerNorm weights
        groups.setdefault((is_head, no_decay), []).append(param)
    head_lr = cfg.head_lr if cfg.head_lr is not None else cfg.lr
    return [
        {
            "params": params,
            "lr": head_lr if is_head else cfg.lr,
            "weight_decay": 0.0 if no_decay else cfg.weight_decay,
        }
        for (is_head, no_decay), params in sorted(groups.items())
    ]


def _adamw(groups: Iterable[dict[str, object]], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, betas=tuple(cfg.betas), eps=cfg.eps)


def _sgd(groups: Iterable[dict[str, object]], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, momentum=cfg.momentum)


_OPTIMIZERS: dict[OptimizerName, Callable[..., torch.optim.Optimizer]] = {
    OptimizerName.ADAMW: _adamw,
    OptimizerName.SGD: _sgd,
}


def build_optimizer(model: nn.Module, cfg: TrainerConfig) -> torch.optim.Optimizer:
    return _OPTIMIZERS[cfg.optimizer.name](param_groups(model, cfg), cfg.optimizer)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainerConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup over ``warmup_ratio`` of the steps, then linear decay to zero."""
    warmup = round(cfg.warmup_ratio * total_steps)
    return get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
