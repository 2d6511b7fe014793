"""Fine-tuning modes: exact trainable-parameter counts and small, restorable checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from accelerate.utils import set_seed
from safetensors import safe_open

from mtfsl.config import (
    FinetuneConfig,
    FinetuneMode,
    LoraConfig,
    ModelConfig,
    ModelSource,
)
from mtfsl.errors import ConfigError
from mtfsl.job import run
from mtfsl.losses import StaticWeighting
from mtfsl.model.encoder import build_encoder, tiny_tokenizer
from mtfsl.model.finetune import apply_finetune
from mtfsl.model.multitask import MultiTaskModel
from mtfsl.pipeline.build import task_model
from mtfsl.resolve import resolve_task
from mtfsl.training.checkpoint import load_weights, save_checkpoint
from tests.conftest import tagging_task

# tiny BERT: hidden 32, 2 layers, intermediate 37, vocab 141, 512 positions (no pooler)
H, LAYERS, FF, VOCAB, POS = 32, 2, 37, 141, 512
HEAD = H * 9 + 9  # linear head over 9 NER labels
LAYER_BIASES = 4 * H + H + FF + H + H  # q,k,v,o; attention LayerNorm; ffn in, out; LayerNorm
BIASES = H + LAYERS * LAYER_BIASES  # embedding LayerNorm bias + per layer
LAYER = 4 * (H * H + H) + 2 * H + (H * FF + FF) + (FF * H + H) + 2 * H
ENCODER = (VOCAB + POS + 2) * H + 2 * H + LAYERS * LAYER


def tiny(
    mode: FinetuneMode, freeze_words: bool = False, **lora
) -> tuple[MultiTaskModel, tuple[int, int]]:
    torch.manual_seed(0)
    encoder, _ = build_encoder(ModelConfig(source=ModelSource.TINY, name_or_path="tiny"))
    model = task_model(
        encoder,
        {"ner": (resolve_task("ner", tagging_task()), 9)},
        0.1,
        StaticWeighting(["ner"], {}),
    )
    return model, apply_finetune(
        model, FinetuneConfig(mode, LoraConfig(**lora), freeze_word_embeddings=freeze_words)
    )


@pytest.mark.parametrize(
    ("mode", "trainable"),
    [
        (FinetuneMode.FULL, ENCODER + HEAD),
        (FinetuneMode.HEAD_ONLY, HEAD),
        (FinetuneMode.BITFIT, BIASES + HEAD),
    ],
)
def test_trainable_parameter_counts(mode: FinetuneMode, trainable: int) -> None:
    assert tiny(mode)[1] == (trainable, ENCODER + HEAD)


@pytest.mark.parametrize(
    ("mode", "trainable"),
    [(FinetuneMode.FULL, ENCODER - VOCAB * H + HEAD), (FinetuneMode.BITFIT, BIASES + HEAD)],
)
def test_freeze_word_embeddings_fixes_exactly_the_vocabulary_matrix(
    mode: FinetuneMode, trainable: int
) -> None:
    model, counts = tiny(mode, freeze_words=True)
    assert counts == (trainable, ENCODER + HEAD)
    words = model.encoder.get_input_embeddings().weight
    assert words.shape == (VOCAB, H) and not words.requires_grad


def test_lora_adds_rank_r_adapters_to_the_target_modules_only() -> None:
    model, (trainable, total) = tiny(FinetuneMode.LORA, r=4, target_modules=["query", "value"])
    adapters = LAYERS * 2 * (H * 4 + 4 * H)  # A (r x in) and B (out x r) per module
    assert (trainable, total) == (adapters + HEAD, ENCODER + HEAD + adapters)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all("lora_" in n or n.startswith("heads.") for n in names)
    with pytest.raises(ConfigError, match=r"^finetune\.lora\.target_modules=\['nope'\]: "):
        tiny(FinetuneMode.LORA, target_modules=["nope"])


def test_partial_checkpoint_restores_the_trained_model(tmp_path: Path) -> None:
    model, _ = tiny(FinetuneMode.LORA)
    with torch.no_grad():  # "training": change every trainable tensor
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))
    save_checkpoint(
        tmp_path / "best", model, tiny_tokenizer(), {"ner": []}, {}, trainable_only=True
    )
    with safe_open(str(tmp_path / "best" / "model.safetensors"), framework="pt") as f:
        saved = set(f.keys())
    assert saved == {n for n, p in model.named_parameters() if p.requires_grad}
    fresh, _ = tiny(FinetuneMode.LORA)  # the same pretrained encoder, fresh adapters
    load_weights(tmp_path / "best", fresh)
    for (name, a), (_, b) in zip(
        model.state_dict().items(), fresh.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_lora_run_saves_only_adapters_and_heads(toy_cfg, tmp_path: Path) -> None:
    toy_cfg.finetune.mode, toy_cfg.trainer.max_steps = FinetuneMode.LORA, 4
    toy_cfg.trainer.eval_every_steps = 2
    metrics = run(toy_cfg, tmp_path / "run")
    r, modules = 8, 3  # configs/finetune/lora.yaml defaults: query, key, value
    adapters = LAYERS * modules * 2 * H * r
    assert metrics["train/trainable_parameters"] == adapters + HEAD
    assert metrics["train/parameters"] == ENCODER + HEAD + adapters
    best = tmp_path / "run" / "checkpoints" / "best"
    with safe_open(str(best / "model.safetensors"), framework="pt") as f:
        assert (f.metadata() or {}).get("partial") == "true"
        numel = sum(f.get_tensor(k).numel() for k in f.keys())  # noqa: SIM118
    assert numel == adapters + HEAD
    assert json.loads((best / "trainer_state.json").read_text())["step"] in (2, 4)


def test_frozen_word_embeddings_stay_as_loaded_through_training(toy_cfg, tmp_path: Path) -> None:
    toy_cfg.finetune.freeze_word_embeddings, toy_cfg.trainer.max_steps = True, 4
    metrics = run(toy_cfg, tmp_path / "run")
    assert metrics["train/trainable_parameters"] == ENCODER - VOCAB * H + HEAD
    set_seed(toy_cfg.seed)  # the run built its random tiny encoder right after this
    loaded = build_encoder(toy_cfg.model)[0].get_input_embeddings().weight
    best = tmp_path / "run" / "checkpoints" / "best" / "model.safetensors"
    with safe_open(str(best), framework="pt") as f:
        words = f.get_tensor("encoder.embeddings.word_embeddings.weight")
        position = f.get_tensor("encoder.embeddings.position_embeddings.weight")
    assert torch.equal(words, loaded)
    fresh = build_encoder(toy_cfg.model)[0]  # other embeddings did train
    assert not torch.equal(position, fresh.embeddings.position_embeddings.weight)
