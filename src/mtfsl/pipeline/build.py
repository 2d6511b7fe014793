"""Build a run's model from its config: the one path for training, ``resume=``,
``mtfsl-predict`` and ``mtfsl-export``, so a run folder is rebuilt by the code that trained it.

Each task's kind gives its head (and what the head needs from the encoder); the model itself
(``model.multitask``) knows no kinds.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mtfsl.config import TrainConfig
from mtfsl.losses import Weighting, build_weighting
from mtfsl.model.backbones import family
from mtfsl.model.backbones import settle as settle_model
from mtfsl.model.encoder import build_encoder, build_masked_lm
from mtfsl.model.finetune import apply_finetune
from mtfsl.model.multitask import MultiTaskModel
from mtfsl.resolve import Task, settle_tasks


def build_encoder_for(
    cfg: TrainConfig, tasks: dict[str, Task], labels: dict[str, list[str]]
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict[str, Any]]:
    """The encoder and tokenizer for a run's tasks, with its masked-LM head when a task's
    kind needs one; returns the head contexts of the tasks that have one."""
    if any(t.kind.needs_masked_lm(t.cfg) for t in tasks.values()):
        encoder, tokenizer, mlm_head = build_masked_lm(cfg.model)
    else:
        (encoder, tokenizer), mlm_head = build_encoder(cfg.model), None
    contexts = {
        name: context
        for name, t in tasks.items()
        if (context := t.kind.head_context(name, t.cfg, labels[name], tokenizer, mlm_head))
        is not None
    }
    return encoder, tokenizer, contexts


def task_model(
    encoder: PreTrainedModel,
    tasks: dict[str, tuple[Task, int]],
    dropout: float,
    weighting: Weighting,
    contexts: dict[str, Any] | None = None,
    full_mask: bool = False,
) -> MultiTaskModel:
    """``encoder`` with each task's head (its kind's, for ``n`` labels) and the extra input
    embeddings the kinds declare (the largest vocabulary where two tasks share a column)."""
    hidden, contexts = encoder.config.hidden_size, contexts or {}
    heads: dict[str, nn.Module] = {
        name: t.kind.head(t.cfg, hidden, n, dropout, contexts.get(name))
        for name, (t, n) in tasks.items()
    }
    sizes: dict[str, int] = {}
    for t, _ in tasks.values():
        for column, size in t.kind.input_embeddings(t.cfg).items():
            sizes[column] = max(size, sizes.get(column, 0))
    return MultiTaskModel(encoder, heads, weighting, sizes, full_mask)


def build_model(
    cfg: TrainConfig, tasks: dict[str, Task], labels: dict[str, list[str]]
) -> tuple[MultiTaskModel, PreTrainedTokenizerBase, tuple[int, int]]:
    """The encoder, every task's head (its kind's) and the loss weighting, with the
    fine-tuning mode applied. Returns (model, tokenizer, (trainable, total) parameters).

    Randomly initialised weights (heads, LoRA adapters) follow the global seed: seed first.
    The backbone family and the tasks' pooling are settled here if ``cfg`` was not.
    """
    cfg = replace(cfg, model=settle_model(cfg.model))
    backbone = family(cfg.model)
    tasks = settle_tasks(tasks, backbone)
    encoder, tokenizer, contexts = build_encoder_for(cfg, tasks, labels)
    model = task_model(
        encoder,
        {name: (t, len(labels[name])) for name, t in tasks.items()},
        cfg.model.dropout,
        build_weighting(cfg.loss_weights, list(tasks)),
        contexts,
        backbone.full_mask(cfg.model),
    )
    if cfg.model.init_from is not None:
        from mtfsl.model.init_from import init_from

        init_from(model, cfg.model.init_from, labels)
    counts = apply_finetune(model, cfg.finetune, backbone.lora_targets(encoder))
    if cfg.hardware.gradient_checkpointing:
        # non-reentrant: works with frozen inputs (LoRA) and keeps dropout masks the same;
        # transformers 5.x renames the method (the old name warns, and goes in v6)
        enable = getattr(encoder, "activation_checkpointing_enable", None)
        (enable or encoder.gradient_checkpointing_enable)({"use_reentrant": False})
    return model, tokenizer, counts
