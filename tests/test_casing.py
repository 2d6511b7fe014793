"""Word-shape features for uncased encoders (``task.NAME.case_features``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from accelerate.utils import set_seed

from mtfsl.config import ModelConfig, ModelSource, TrainerConfig
from mtfsl.data.batching import PaddingCollator
from mtfsl.data.casing import CASE_VOCAB, WordCase, word_case, word_cases
from mtfsl.data.features import WindowFeaturizer, featurize_words
from mtfsl.errors import ConfigError
from mtfsl.export import export
from mtfsl.kinds import KINDS
from mtfsl.losses import StaticWeighting
from mtfsl.model.encoder import build_encoder, tiny_tokenizer
from mtfsl.model.multitask import MultiTaskModel
from mtfsl.pipeline.build import task_model
from mtfsl.resolve import resolve_task
from mtfsl.training.optim import build_optimizer, param_groups
from tests.conftest import FIXTURES, tagging_task
from tests.test_predict_export import predict_cli, trained
from tests.test_train_e2e import read_conll_pred


@pytest.mark.parametrize(
    ("word", "first", "case"),
    [
        ("the", False, WordCase.LOWER),
        ("don't", True, WordCase.LOWER),
        ("Japan", False, WordCase.TITLE),
        ("Japan", True, WordCase.TITLE_FIRST),
        ("I", False, WordCase.TITLE),  # one capital letter is a title, not an acronym
        ("O'neil", False, WordCase.TITLE),
        ("EU", False, WordCase.UPPER),
        ("U.S.", True, WordCase.UPPER),
        ("McDonald", False, WordCase.MIXED),
        ("iPhone", False, WordCase.MIXED),
        ("1990s", False, WordCase.LOWER),  # letters decide when there are any
        ("1996", False, WordCase.NUMBER),
        ("3-2", False, WordCase.NUMBER),
        (",", False, WordCase.OTHER),
        ("--", True, WordCase.OTHER),
    ],
)
def test_word_case(word: str, first: bool, case: WordCase) -> None:
    assert word_case(word, first) is case


def test_only_the_sentences_first_word_is_marked_first() -> None:
    # two words of document context, then the sentence "Peter lives in Rome"
    words = ["Reuters", "said", "Peter", "lives", "in", "Rome"]
    assert word_cases(words, start=2) == [2, 1, 3, 1, 1, 2]
    assert word_cases(["Rome", "Rome"]) == [3, 2]
    assert CASE_VOCAB == 8


def test_every_sub_token_carries_its_words_case() -> None:
    tok = tiny_tokenizer()
    feat = WindowFeaturizer(tok, max_length=32, stride=4, casing=True)
    out = feat({"words": [["Ab", "c", "EU", "7"]], "label_ids": [[1, 0, 2, 0]], "sentence": [0]})
    # [CLS] a ##b c e ##u 7 [SEP]: the uncased tokenizer has lost the capitals
    assert tok.convert_ids_to_tokens(out["input_ids"][0]) == [
        "[CLS]", "a", "##b", "c", "e", "##u", "7", "[SEP]"
    ]  # fmt: skip
    assert out["case_ids"][0] == [0, 3, 3, 1, 4, 4, 6, 0]
    plain = WindowFeaturizer(tok, max_length=32, stride=4)
    without = plain({"words": [["Ab"]], "label_ids": [[1]], "sentence": [0]})
    assert "case_ids" not in without


def test_case_ids_follow_windows_and_are_cached_apart(tmp_path: Path) -> None:
    words = ["Word"] + ["w"] * 20 + ["EU"]
    labels = [0] * len(words)
    tok = tiny_tokenizer()
    ds = featurize_words([words], [labels], tok, 12, 2, tmp_path, casing=True)
    assert len(ds) > 1  # several windows; each row's cases line up with its ids
    for row in ds:
        assert len(row["case_ids"]) == len(row["input_ids"])
        assert row["case_ids"][0] == row["case_ids"][-1] == 0
    assert ds[0]["case_ids"][1] == WordCase.TITLE_FIRST  # "W" of the sentence's first word
    assert ds[len(ds) - 1]["case_ids"][-3:] == [4, 4, 0]  # "e ##u [SEP]"
    plain = featurize_words([words], [labels], tok, 12, 2, tmp_path)
    assert "case_ids" not in plain.column_names  # not served from the casing run's cache


def model(
    case_features: bool, num_labels: int = 2, encoder: torch.nn.Module | None = None
) -> MultiTaskModel:
    """A one-task tagger on ``encoder`` (default: a fresh tiny BERT)."""
    set_seed(0)
    if encoder is None:
        encoder, _ = build_encoder(ModelConfig(source=ModelSource.TINY, name_or_path="tiny"))
    task = tagging_task(case_features=case_features)
    return task_model(
        encoder, {"ner": (resolve_task("ner", task), num_labels)}, 0.0, StaticWeighting(["ner"], {})
    )


def case_batch() -> dict[str, torch.Tensor]:
    """Two pairs of sentences the uncased tokenizer makes identical; tag 1 iff capitalised."""
    feat = WindowFeaturizer(tiny_tokenizer(), max_length=32, stride=4, casing=True)
    sentences = [["apple", "pie"], ["Apple", "pie"], ["an", "apple"], ["an", "Apple"]]
    tags = [[int(w[0].isupper()) for w in s] for s in sentences]
    rows = feat({"words": sentences, "label_ids": tags, "sentence": [0, 1, 2, 3]})
    collate = PaddingCollator(tiny_tokenizer().pad_token_id, None, KINDS["tagging"].pad_values)
    return collate([{k: rows[k][i] for k in rows} for i in range(len(sentences))])


def test_shape_embedding_starts_at_zero_so_the_encoder_starts_as_shipped() -> None:
    batch = case_batch()
    with_cases, without = model(True), model(False)
    assert with_cases.input_embeddings["case_ids"].weight.shape == (CASE_VOCAB, 32)
    assert with_cases.input_embeddings["case_ids"].weight.abs().sum() == 0
    assert len(without.input_embeddings) == 0
    with_cases.eval(), without.eval()
    assert torch.equal(with_cases.encode(batch), without.encode(batch))
    with torch.no_grad():
        with_cases.input_embeddings["case_ids"].weight[WordCase.TITLE] = 1.0
    assert not torch.equal(with_cases.encode(batch), without.encode(batch))


def test_the_shape_embedding_has_its_own_learning_rate() -> None:
    net = model(True)
    groups = param_groups(net, TrainerConfig(lr=1e-4, input_lr=3e-3, weight_decay=0.1))
    shapes = net.input_embeddings["case_ids"].weight
    (group,) = [g for g in groups if any(p is shapes for p in g["params"])]
    assert (group["lr"], group["weight_decay"], len(group["params"])) == (3e-3, 0.1, 1)
    default = param_groups(net, TrainerConfig(lr=1e-4))
    assert sorted({g["lr"] for g in default}) == [1e-4, 1e-3]  # the default input_lr: 1e-3


def accuracy_after_overfitting(case_features: bool) -> float:
    net = model(case_features)
    batch = case_batch()
    optimizer = build_optimizer(net, TrainerConfig(lr=1e-2, weight_decay=0.0))
    for _ in range(60):
        loss = net.loss("ner", net("ner", batch), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()
    labelled = batch["labels"] >= 0
    pred = net.decode("ner", net("ner", batch), batch)
    return (pred[labelled] == batch["labels"][labelled]).float().mean().item()


def test_capitals_an_uncased_encoder_cannot_see_are_learned_from_the_shapes() -> None:
    # without shapes each pair of identical inputs gets one tag: one of its 4 words is wrong
    assert accuracy_after_overfitting(True) == 1.0
    assert accuracy_after_overfitting(False) == 6 / 8


def test_a_case_features_run_predicts_and_refuses_a_standard_export(
    toy_cfg, tmp_path: Path
) -> None:
    toy_cfg.task["conll"].case_features = True
    run_dir = trained(toy_cfg, tmp_path)
    reference = read_conll_pred(run_dir / "predictions" / "test_conll.conll")
    out = tmp_path / "pred.conll"
    predict_cli(run_dir, str(FIXTURES / "toy_conll" / "toy.test"), "conll", out)
    assert read_conll_pred(out) == reference  # predict rebuilds the shapes the run used
    with pytest.raises(ConfigError, match="case_features"):
        export(run_dir, tmp_path / "hf")


def test_starting_from_a_case_features_run_without_them_names_the_key(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from mtfsl.model.init_from import init_from

    (tmp_path / "labels.json").write_text(json.dumps({"ner": ["O", "B-X"]}))
    save_file(model(True).state_dict(), str(tmp_path / "model.safetensors"))
    with pytest.raises(ConfigError, match=r"input_embeddings\.case_ids\.weight.*case_features"):
        init_from(model(False), str(tmp_path), {"ner": ["O", "B-X"]})
    assert init_from(model(True), str(tmp_path), {"ner": ["O", "B-X"]}) == ["ner"]


def test_mpnet_sees_the_same_real_tokens_through_the_shape_path() -> None:
    # MPNet (model=mpnet) derives position ids from the pad id when given input_ids but counts
    # every position when given inputs_embeds; with right padding only the (masked) pad
    # positions differ, so the shape path changes nothing a head reads
    from transformers import MPNetConfig, MPNetModel

    tok = tiny_tokenizer()
    set_seed(0)
    config = MPNetConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, pad_token_id=1,
    )  # fmt: skip
    encoder = MPNetModel(config, add_pooling_layer=False).eval()
    nets = [model(c, encoder=encoder).eval() for c in (True, False)]
    batch = case_batch()
    ids = batch["input_ids"]  # pad with 1, the id MPNet's position ids treat as padding
    batch["input_ids"] = torch.where(ids == tok.pad_token_id, 1, torch.where(ids == 1, 0, ids))
    real = batch["attention_mask"].bool()
    assert not real.all()  # the batch is padded
    with_cases, without = (net.encode(batch) for net in nets)
    assert torch.equal(with_cases[real], without[real])
    assert not torch.equal(with_cases[~real], without[~real])
