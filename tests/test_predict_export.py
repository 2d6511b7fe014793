"""mtfsl-predict and mtfsl-export on trained tiny runs: the same predictions as training's
own evaluation, and a standard HF pipeline that agrees with them on every test example."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest
from transformers import pipeline

from mtfsl.config import FinetuneMode, Pooling
from mtfsl.errors import ConfigError
from mtfsl.export import export
from mtfsl.inference.stream import (
    Example,
    punctuation_words,
    text_examples,
    whitespace_words,
    write_jsonl,
)
from mtfsl.job import run
from mtfsl.kinds import KINDS
from tests.conftest import FIXTURES, TOY_INTENTS, compose_cfg, predict_in_process
from tests.test_train_e2e import CLI, read_conll_pred

PREDICT = str(Path(CLI).with_name("mtfsl-predict"))


def predict_cli(run_dir: Path, source: str, fmt: str, out: Path, *extra: str) -> None:
    proc = predict_in_process(str(run_dir), source, "--format", fmt, "--output", str(out), *extra)
    assert proc.returncode == 0, proc.stderr


def test_raw_text_is_split_at_punctuation_by_default() -> None:
    words = [w for w, _ in punctuation_words("Merkel met O'Neil in Washington, then Berlin.")]
    assert words == ["Merkel", "met", "O'Neil", "in", "Washington", ",", "then", "Berlin", "."]
    words += [w for w, _ in punctuation_words("(AP) The U.S. co-founder paid 1,000.50 euros")]
    assert words[9:] == ["(", "AP", ")", "The", "U.S.", "co-founder", "paid", "1,000.50", "euros"]
    assert punctuation_words("Bonn.") == [("Bonn", (0, 4)), (".", (4, 5))]


def test_jsonl_entities_carry_character_offsets() -> None:
    tagging = KINDS["tagging"]
    inputs = list(text_examples(["Peter  Blackburn went to Bonn"], tagging, whitespace_words))
    out = io.StringIO()
    write_jsonl(out, tagging, inputs, [["B-PER", "I-PER", "O", "O", "B-LOC"]])
    assert out.getvalue() == (
        '{"text": "Peter  Blackburn went to Bonn", "words": ["Peter", "Blackburn", "went", '
        '"to", "Bonn"], "tags": ["B-PER", "I-PER", "O", "O", "B-LOC"], "entities": [{"type": '
        '"PER", "start": 0, "end": 16, "text": "Peter  Blackburn"}, {"type": "LOC", "start": '
        '25, "end": 29, "text": "Bonn"}]}\n'
    )
    seq = io.StringIO()
    write_jsonl(seq, KINDS["classification"], [Example("hi", "hi")], ["greet"])
    assert seq.getvalue() == '{"text": "hi", "label": "greet"}\n'


def trained(toy_cfg, tmp_path: Path, context: int = 0, **changes) -> Path:
    toy_cfg.model.max_length = 512  # whole sentences, as a pipeline sees them
    toy_cfg.data.context = context
    toy_cfg.trainer.max_steps, toy_cfg.trainer.lr, toy_cfg.trainer.batch_size = 30, 5e-3, 4
    for key, value in changes.items():
        setattr(toy_cfg.finetune, key, value)
    run(toy_cfg, tmp_path / "run")
    return tmp_path / "run"


@pytest.mark.parametrize("mode", ["FULL", pytest.param("LORA", marks=pytest.mark.slow)])
def test_predict_and_exported_pipeline_match_training_predictions(
    toy_cfg, tmp_path: Path, mode: str
) -> None:
    run_dir = trained(toy_cfg, tmp_path, mode=FinetuneMode[mode])
    reference = read_conll_pred(run_dir / "predictions" / "test_conll.conll")
    tags = [[p for _, _, p in sentence] for sentence in reference]
    assert any(t != "O" for sentence in tags for t in sentence)  # a non-trivial model

    out = tmp_path / "pred.conll"
    predict_cli(run_dir, str(FIXTURES / "toy_conll" / "toy.test"), "conll", out)
    assert read_conll_pred(out) == reference  # words, gold and predicted tags
    # dev is not scored again at the end: its files and scores are those of the evaluation
    # that made the best checkpoint, and the best checkpoint predicts exactly them
    predict_cli(run_dir, str(FIXTURES / "toy_conll" / "toy.dev"), "conll", out)
    assert read_conll_pred(out) == read_conll_pred(run_dir / "predictions" / "dev_conll.conll")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = json.loads((run_dir / "dev_history.json").read_text())["history"]
    best = next(h for h in history if h["step"] == metrics["train/best_step"])
    assert {k: v for k, v in best.items() if k.startswith("dev/")} == {
        k: v for k, v in metrics.items() if k.startswith("dev/conll/")
    }
    assert metrics["time/predict_dev_seconds"] == 0.0
    # a labelled file scored by the trained run, without training: the run's own test scores
    report = tmp_path / "report.txt"
    cmd = [PREDICT, str(run_dir), str(FIXTURES / "toy_conll" / "toy.test"), "--format", "conll"]
    proc = subprocess.run(
        [*cmd, "--score", "--output", str(report)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    scored = json.loads(proc.stdout)
    assert scored == {
        k.replace("test/", "toy.test/"): v for k, v in metrics.items() if k.startswith("test/")
    }
    reference_report = (run_dir / "reports" / "test_conll.txt").read_text()
    assert report.read_text() == reference_report.replace("# test / conll", "# toy.test / conll")

    hf_dir = export(run_dir, tmp_path / "hf")
    tagger = pipeline("token-classification", model=str(hf_dir), ignore_labels=[], device="cpu")
    for sentence, expected in zip(reference, tags, strict=True):
        words = [w for w, _, _ in sentence]
        text = " ".join(words)
        by_start = {t["start"]: t["entity"] for t in tagger(text)}
        starts = [sum(len(w) + 1 for w in words[:i]) for i in range(len(words))]
        assert [by_start[s] for s in starts] == expected
    # whole-word entities: aggregation "first" (a word takes its first sub-token's tag, as
    # training scores it) gives the entities mtfsl-predict writes, for sentences whose words
    # the tokenizer's pre-tokenizer keeps whole (it splits "1996-12-06" into 5 words)
    entities = pipeline(
        "token-classification", model=str(hf_dir), aggregation_strategy="first", device="cpu"
    )
    pre = entities.tokenizer.backend_tokenizer.pre_tokenizer
    whole = [s for s in reference if all(len(pre.pre_tokenize_str(w)) == 1 for w, _, _ in s)]
    assert len(whole) >= 2
    lines = "\n".join(" ".join(w for w, _, _ in s) for s in whole) + "\n"
    out = subprocess.run(
        [PREDICT, str(run_dir), "--out-format", "jsonl", "--split", "whitespace"],
        input=lines,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line, record in zip(lines.splitlines(), map(json.loads, out.splitlines()), strict=True):
        ours = [(e["type"], e["start"], e["end"]) for e in record["entities"]]
        theirs = [(e["entity_group"], e["start"], e["end"]) for e in entities(line)]
        assert theirs == ours
        # each word's score is the softmax probability of its tag at its first sub-token,
        # what the pipeline reports per token; an entity's score is its words' mean
        by_start = {t["start"]: t["score"] for t in tagger(line)}
        starts = [sum(len(w) + 1 for w in record["words"][:i]) for i in range(len(record["words"]))]
        assert record["scores"] == pytest.approx([by_start[s] for s in starts], abs=1e-5)
        for e in record["entities"]:
            a = starts.index(e["start"])
            b = a + len(e["text"].split())
            assert e["score"] == pytest.approx(sum(record["scores"][a:b]) / (b - a))


def test_predict_uses_the_document_context_the_run_was_trained_with(
    toy_cfg, tmp_path: Path
) -> None:
    run_dir = trained(toy_cfg, tmp_path, context=1)
    reference = read_conll_pred(run_dir / "predictions" / "test_conll.conll")
    out = tmp_path / "pred.conll"
    predict_cli(run_dir, str(FIXTURES / "toy_conll" / "toy.test"), "conll", out)
    assert read_conll_pred(out) == reference
    # streamed a sentence or two at a time, each chunk carrying its neighbours: no change
    for size in ("1", "2"):
        predict_cli(
            run_dir, str(FIXTURES / "toy_conll" / "toy.test"), "conll", out, "--chunk-size", size
        )
        assert read_conll_pred(out) == reference
    # the same sentences without their neighbours are predicted differently by this model
    alone = tmp_path / "alone.txt"
    alone.write_text("\n".join(" ".join(w for w, _, _ in s) for s in reference) + "\n")
    predict_cli(run_dir, str(alone), "text", out)
    assert [[t[-1] for t in s] for s in read_conll_pred(out)] != [
        [t[-1] for t in s] for s in reference
    ]


def test_sequence_classification_export(tmp_path: Path) -> None:
    cfg = compose_cfg(
        [
            *TOY_INTENTS,
            f"data.cache_dir={tmp_path / 'cache'}",
            "task.banking77.pooling=POOLER",
            "trainer.max_steps=10",
            "trainer.lr=5e-3",
        ]
    )
    run(cfg, tmp_path / "run")
    rows = (tmp_path / "run/predictions/test_banking77.tsv").read_text().splitlines()[1:]
    texts = [r.split("\t")[0].replace("\\n", "\n") for r in rows]
    hf_dir = export(tmp_path / "run", tmp_path / "hf")
    classify = pipeline("text-classification", model=str(hf_dir), device="cpu")
    outputs = classify(texts)
    assert [p["label"] for p in outputs] == [r.split("\t")[2] for r in rows]
    # mtfsl-predict's score is the predicted intent's softmax probability, as the pipeline's
    scored = subprocess.run(
        [PREDICT, str(tmp_path / "run"), "--out-format", "jsonl"],
        input="\n".join(t.replace("\n", " ") for t in texts[:2]) + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for line, expected in zip(
        scored, classify([t.replace("\n", " ") for t in texts[:2]]), strict=True
    ):
        record = json.loads(line)
        assert record["label"] == expected["label"]
        assert record["score"] == pytest.approx(expected["score"], abs=1e-5)
    cfg.task["banking77"].pooling, cfg.trainer.max_steps = Pooling.MEAN, 1
    run(cfg, tmp_path / "mean")
    with pytest.raises(ConfigError, match=r"pooling MEAN\) does not pool as BertForSequence"):
        export(tmp_path / "mean", tmp_path / "hf2")
