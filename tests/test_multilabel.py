"""The multi-label kind (kinds/multilabel.py) and the conll_types reader: label sets read from
JSONL, CSV strings and CoNLL tags; scores checked by hand; the threshold tuned on dev; a tiny
run trained, scored, predicted and exported from a user JSONL file and from CoNLL."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from mtfsl.config import Pooling
from mtfsl.data.batching import PaddingCollator
from mtfsl.data.readers import READERS
from mtfsl.errors import DataError
from mtfsl.job import run
from mtfsl.kinds import KINDS
from mtfsl.kinds.multilabel import MultiLabelTaskConfig, f1_scores, head_type
from mtfsl.resolve import compose_config, resolve_task
from tests.conftest import FIXTURES, TOY_TASK
from tests.test_own_data import cli_task
from tests.test_predict_export import PREDICT

KIND = KINDS["multilabel"]
TOY = FIXTURES / "toy_multilabel"


def jsonl_task(**fields: object) -> MultiLabelTaskConfig:
    task = MultiLabelTaskConfig(**fields)  # type: ignore[arg-type]
    task.reader = READERS["jsonl"].schema()
    return task


def read(path: Path, task: MultiLabelTaskConfig, fmt: str = "jsonl"):
    records = READERS[fmt].read(path, task.reader, KIND.columns("task.t", task))
    return KIND.to_split(records, task)


def test_label_sets_from_jsonl_lists_and_separated_strings(tmp_path: Path) -> None:
    split = read(TOY / "train.jsonl", jsonl_task(label_map={"pin": "PIN"}))
    assert split.targets[:6] == [
        ["billing", "refund"],
        ["billing", "refund"],
        ["card"],
        ["PIN", "card"],
        ["PIN"],
        [],
    ]
    assert KIND.label_counts(split) == {"PIN": 3, "billing": 4, "card": 3, "refund": 3}
    csv = tmp_path / "t.csv"
    csv.write_text("text,labels\nfee and refund,billing| refund\nhi,\n")
    task = MultiLabelTaskConfig()
    task.reader = READERS["csv"].schema()
    assert read(csv, task, "csv").targets == [["billing", "refund"], []]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "labels": 3}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: expected a list of labels"):
        read(bad, jsonl_task())


def test_conll_types_reads_the_entity_types_of_each_sentence() -> None:
    task = MultiLabelTaskConfig(text_column="0", label_column="3")
    task.reader = READERS["conll_types"].schema()
    iob2 = read(FIXTURES / "toy_conll" / "toy.train", task, "conll_types")
    assert iob2.inputs[:3] == [
        "EU rejects German call to boycott British lamb .",
        "Peter Blackburn",
        "BRUSSELS 1996-08-22",
    ]
    assert iob2.targets[:3] == [["MISC", "ORG"], ["PER"], ["LOC"]]
    assert iob2.lines[:3] == [3, 13, 16]
    iob1 = read(FIXTURES / "toy_conll" / "toy_iob1.train", task, "conll_types")
    assert iob1.targets == iob2.targets  # I-PER and B-PER both say PER


def test_scores_by_hand() -> None:
    gold = np.array([[1, 0], [0, 1], [0, 0]])
    pred = np.array([[1, 1], [0, 1], [0, 0]])
    scores = f1_scores(gold, pred)
    # micro: tp 2, fp 1, fn 0 -> P 2/3, R 1, F1 0.8; macro: label 0 F1 1, label 1 F1 2/3;
    # samples: 2/3, 1, and 1 for the text with neither gold nor predicted labels
    assert scores["micro_f1"] == pytest.approx(80.0)
    assert scores["macro_f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert scores["samples_f1"] == pytest.approx(100 * (2 / 3 + 1 + 1) / 3)
    assert scores["exact_match"] == pytest.approx(100 * 2 / 3)
    by_name = KIND.score(None, [["a"], ["b"], []], [["a", "b"], ["b"], []], None)
    assert by_name == pytest.approx(scores)


def test_the_head_learns_label_sets_and_decides_by_its_threshold() -> None:
    torch.manual_seed(0)
    head = head_type()(4, 3, 0.0, Pooling.CLS, 0.5)
    hidden = torch.randn(2, 1, 4)
    batch = {"label_set": torch.tensor([[0, 2], [-1, -1]]), "attention_mask": torch.ones(2, 1)}
    optimizer = torch.optim.SGD(head.parameters(), lr=1.0)
    losses = []
    for _ in range(100):
        loss = head.loss(head(hidden, batch), batch)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < 0.1 * losses[0]
    assert head.decode(head(hidden, batch), batch).tolist() == [[1, 0, 1], [0, 0, 0]]
    scores = torch.tensor([[0.0, 2.0, -2.0]])  # sigmoids 0.5, 0.88, 0.12
    assert head.decode(scores, batch).tolist() == [[1, 1, 0]]
    head.threshold.fill_(0.6)
    assert head.decode(scores, batch).tolist() == [[0, 1, 0]]
    assert "threshold" in head.state_dict()  # checkpoints keep a tuned threshold


def test_the_threshold_is_tuned_on_dev_micro_f1() -> None:
    head = head_type()(4, 2, 0.0, Pooling.CLS, 0.5)
    probs = [[0.9, 0.3], [0.2, 0.35]]
    # b is right on the second text only: the threshold must be in (0.3, 0.35]
    ids, fitted = KIND.calibrate(MultiLabelTaskConfig(), head, probs, [["a"], ["b"]], ["a", "b"])
    assert fitted == {"threshold": 0.35}
    assert head.threshold.item() == pytest.approx(0.35)
    assert [row.tolist() for row in ids] == [[1, 0], [0, 1]]


def test_label_sets_are_padded_to_the_longest_in_the_batch() -> None:
    collate = PaddingCollator(0, 8, KIND.pad_values, KIND.ragged_pad_values)
    rows = [
        {"input_ids": [5, 6, 7], "label_set": [0, 2], "sentence": 0},
        {"input_ids": [5], "label_set": [], "sentence": 1},
    ]
    batch = collate(rows)
    assert batch["input_ids"].shape == (2, 8)  # tokens: to the multiple of 8
    assert batch["label_set"].tolist() == [[0, 2], [-1, -1]]


def _run_jsonl(tmp_path: Path, *extra: str) -> Path:
    files = f"files: {{train: {TOY}/train.jsonl, dev: {TOY}/dev.jsonl, test: {TOY}/test.jsonl}}"
    cfg = compose_config(
        [
            *cli_task("tickets", f"kind: multilabel, reader: {{format: jsonl}}, {files}"),
            "model=tiny",
            "hardware=cpu",
            f"data.cache_dir={tmp_path / 'cache'}",
            "trainer.max_steps=30",
            "trainer.lr=5e-3",
            "trainer.batch_size=4",
            *extra,
        ]
    )
    metrics = run(cfg, tmp_path / "run")
    assert metrics["dev/tickets/threshold"] in [round(0.05 * i, 2) for i in range(1, 20)]
    for key in ("micro_f1", "macro_f1", "samples_f1", "exact_match"):
        assert 0 <= metrics[f"test/tickets/{key}"] <= 100
    return tmp_path / "run"


def test_a_user_jsonl_task_trains_predicts_and_exports(tmp_path: Path) -> None:
    from transformers import pipeline

    from mtfsl.export import export

    run_dir = _run_jsonl(tmp_path, "+task.tickets.pooling=POOLER")
    rows = (run_dir / "predictions" / "test_tickets.tsv").read_text().splitlines()
    assert rows[0] == "text\tgold\tpred"
    assert rows[1].split("\t")[:2] == ["I need a refund for a wrong charge", "billing|refund"]
    report = (run_dir / "reports" / "test_tickets.txt").read_text()
    assert "micro avg" in report and "samples avg" in report
    assert "texts with neither gold nor predicted labels as right" in report
    texts = [r.split("\t")[0] for r in rows[1:]]
    out = subprocess.run(
        [PREDICT, str(run_dir), "--out-format", "jsonl"],
        input="\n".join(texts) + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    records = [json.loads(line) for line in out]
    trained = [r.split("\t")[2] for r in rows[1:]]
    assert ["|".join(r["labels"]) for r in records] == trained
    threshold = json.loads((run_dir / "metrics.json").read_text())["dev/tickets/threshold"]
    assert all(s >= threshold for r in records for s in r["scores"])
    hf = export(run_dir, tmp_path / "hf")
    config = json.loads((hf / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert config["threshold"] == pytest.approx(threshold)
    classify = pipeline("text-classification", model=str(hf), device="cpu", top_k=None)
    for text, record in zip(texts, records, strict=True):
        probs = {p["label"]: p["score"] for p in classify([text])[0]}
        assert sorted(k for k, p in probs.items() if p >= threshold) == record["labels"]


def test_conll_types_trains_and_predicts_through_its_onnx_graph(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from mtfsl.inference.onnx import export_onnx

    files = [o.replace("task.conll.", "task.conll_types.") for o in TOY_TASK]
    cfg = compose_config(
        [
            "task=conll_types",
            "model=tiny",
            "hardware=cpu",
            f"data.root={FIXTURES}",
            f"data.cache_dir={tmp_path / 'cache'}",
            *files,
            "trainer.max_steps=10",
        ]
    )
    assert resolve_task("conll_types", cfg.task["conll_types"]).primary_metric == "micro_f1"
    metrics = run(cfg, tmp_path / "run")
    assert metrics["train/conll_types/examples"] == 11
    record = export_onnx(tmp_path / "run", tmp_path / "onnx", check_split="test")
    assert record["check"]["onnx"]["differ"] == 0
    source = FIXTURES / "toy_conll" / "toy.test"
    scored = subprocess.run(
        [
            *(PREDICT, str(tmp_path / "run"), str(source), "--format", "conll_types"),
            *("--score", "--backend", "onnx", "--onnx-dir", str(tmp_path / "onnx")),
            *("--output", str(tmp_path / "report.txt")),
        ],
        capture_output=True,
        text=True,
    )
    assert scored.returncode == 0, scored.stderr
    expected = {
        k.replace("test/", "toy.test/"): v for k, v in metrics.items() if k.startswith("test/")
    }
    assert json.loads(scored.stdout) == pytest.approx(expected, abs=1e-3)
