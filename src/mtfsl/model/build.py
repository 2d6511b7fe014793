"""Build a run's model from its config: the one path for training, ``resume=``,
``mtfsl-predict`` and ``mtfsl-export``, so a run folder is rebuilt by the code that trained it."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from mtfsl.config import TrainConfig
from mtfsl.losses import build_weighting
from mtfsl.model.encoder import build_encoder_for
from mtfsl.model.finetune import apply_finetune
from mtfsl.model.multitask import MultiTaskModel


def build_model(
    cfg: TrainConfig, labels: dict[str, list[str]]
) -> tuple[MultiTaskModel, PreTrainedTokenizerBase, tuple[int, int]]:
    """The encoder, every task's head (its kind's) and the loss weighting, with the
    fine-tuning mode applied. Returns (model, tokenizer, (trainable, total) parameters).

    Randomly initialised weights (heads, LoRA adapters) follow the global seed: seed first.
    """
    encoder, tokenizer, contexts = build_encoder_for(cfg, labels)
    model = MultiTaskModel(
        encoder,
        {name: (task, len(labels[name])) for name, task in cfg.task.items()},
        cfg.model.dropout,
        build_weighting(cfg.loss_weights, list(cfg.task)),
        contexts,
    )
    if cfg.model.init_from is not None:
        from mtfsl.model.init_from import init_from

        init_from(model, cfg.model.init_from, labels)
    return model, tokenizer, apply_finetune(model, cfg.finetune)
