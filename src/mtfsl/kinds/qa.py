"""Extractive question answering (SQuAD v1.1): the answer is a span of the context.

A question and its context are one input; a context longer than the window is split into
overlapping windows (``stride`` tokens shared), so no word is ever dropped. A linear layer
scores every context token as the answer's start and end; the best span of at most
``max_answer_length`` tokens over all windows is the answer, mapped back to characters of
the context. Scored by exact match and token F1 with the official v1.1 normalisation, the
maximum over the reference answers; ``predictions/SPLIT_TASK.json`` is ``{id: answer}``, the
file the official evaluation script reads, and ``SPLIT_TASK.nbest.json`` the n best spans.
"""

from __future__ import annotations

import collections
import json
import logging
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mtfsl.config import MetricMode, TaskConfig
from mtfsl.data.splits import Split
from mtfsl.errors import ConfigError, DataError
from mtfsl.evaluation.report import atomic_write
from mtfsl.kinds import register_kind
from mtfsl.kinds.base import TaskKind
from mtfsl.utils.text import visible

if TYPE_CHECKING:
    import datasets
    import torch
    from torch import nn

log = logging.getLogger(__name__)

# The two outputs of the span head, named where a classifier names its classes (the
# checkpoint's labels.json; an exported AutoModelForQuestionAnswering has num_labels 2).
SPAN_OUTPUTS = ["start", "end"]


def _question_id(value: Any, where: str) -> str:
    """A question's id as text; a missing, null or empty id is refused (predictions and the
    official scorer are keyed by it)."""
    if value is None or isinstance(value, (dict, list)) or not str(value).strip():
        raise DataError(f"{where}: expected a non-empty question id, found {value!r:.40}")
    return str(value)


@dataclass
class QATaskConfig(TaskConfig):
    kind: str = "qa"
    # Where each question's fields are; null = SQuAD's names (id, question, context, answers).
    # ``answers`` is a list of {text, answer_start} (SQuAD JSON) or {text: [...],
    # answer_start: [...]} (the Hugging Face squad dataset).
    id_column: str | None = None
    question_column: str | None = None
    context_column: str | None = None
    answers_column: str | None = None
    # Window length in sub-tokens (question + context + specials); null = model.max_length.
    max_length: int | None = 384
    # Sub-tokens of context that consecutive windows share (Hugging Face's doc_stride).
    stride: int = 128
    # Longest answer considered, in sub-tokens.
    max_answer_length: int = 30
    # Candidate spans kept per question (written to the n-best file).
    n_best: int = 20


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    context: str


@dataclass(frozen=True)
class Answer:
    """A predicted answer: its text, where it starts in the context, and its score (the sum
    of the start and end logits); ``nbest`` holds the candidates, best first."""

    text: str
    start: int
    score: float
    nbest: tuple[tuple[str, int, float], ...] = ()


# -- the official SQuAD v1.1 evaluation (evaluate-v1.1.py), written out because the
# ``evaluate`` library's squad metric fetches its script from the Hugging Face hub -------------
def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles (a, an, the), single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    common = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def squad_scores(references: list[list[str]], predictions: list[str]) -> dict[str, float]:
    """Exact match and F1 (percent), each the maximum over a question's references."""
    em = f1 = 0.0
    for refs, pred in zip(references, predictions, strict=True):
        em += max(float(normalize_answer(pred) == normalize_answer(r)) for r in refs)
        f1 += max(token_f1(pred, r) for r in refs)
    n = max(len(predictions), 1)
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n}


# -- features ------------------------------------------------------------------------------
class QAFeaturizer:
    """Batched ``datasets.map`` function: each (question, context) into windows of at most
    ``max_length`` sub-tokens, consecutive windows sharing ``stride`` context sub-tokens
    (the tokenizer's overflowing tokens). Per window: which tokens are context and their
    character offsets (to map a span back to the context), and for training the answer's
    first and last token, or 0 (the first token) where the window does not hold it."""

    def __init__(self, tokenizer: Any, max_length: int, stride: int):
        self.tokenizer, self.max_length, self.stride = tokenizer, max_length, stride

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        enc = self.tokenizer(
            batch["question"],
            batch["context"],
            truncation="only_second",
            max_length=self.max_length,
            stride=self.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        out: dict[str, list[Any]] = collections.defaultdict(list)
        for w, source in enumerate(enc["overflow_to_sample_mapping"]):
            segment = enc.sequence_ids(w)
            offsets = enc["offset_mapping"][w]
            mask = [int(s == 1) for s in segment]
            out["input_ids"].append(enc["input_ids"][w])
            if "token_type_ids" in enc:
                out["token_type_ids"].append(enc["token_type_ids"][w])
            out["context_mask"].append(mask)
            out["offset_start"].append(
                [o[0] if m else -1 for o, m in zip(offsets, mask, strict=True)]
            )
            out["offset_end"].append(
                [o[1] if m else -1 for o, m in zip(offsets, mask, strict=True)]
            )
            start, end = self._answer_tokens(
                offsets, mask, batch["answer_start"][source], batch["answer_end"][source]
            )
            out["start_positions"].append(start)
            out["end_positions"].append(end)
            out["sentence"].append(batch["sentence"][source])
            out["length"].append(len(enc["input_ids"][w]))
        return dict(out)

    @staticmethod
    def _answer_tokens(offsets, mask, start_char: int, end_char: int) -> tuple[int, int]:
        context = [i for i, m in enumerate(mask) if m]
        if start_char < 0 or not context:
            return 0, 0
        if offsets[context[0]][0] > start_char or offsets[context[-1]][1] < end_char:
            return 0, 0  # the answer is not (wholly) in this window
        first = next(i for i in context if offsets[i][1] > start_char)
        last = next(i for i in reversed(context) if offsets[i][0] < end_char)
        return first, last


def featurize_questions(
    split: Split, tokenizer: Any, max_length: int, stride: int, cache_dir: str | Path | None
) -> datasets.Dataset:
    """Windows of every question of ``split`` (``QAFeaturizer``); cached like every feature
    set. Training uses each question's first reference answer."""
    import datasets

    from mtfsl.data.features import cached_map

    first = [refs[0] if refs else ("", -1) for refs in split.targets]
    columns = {
        "question": [q.question for q in split.inputs],
        "context": [q.context for q in split.inputs],
        "answer_start": [start for _, start in first],
        "answer_end": [start + len(text) if start >= 0 else -1 for text, start in first],
        "sentence": list(range(len(split))),
    }
    raw = datasets.Dataset.from_dict(columns)
    vocab = tokenizer.backend_tokenizer.to_str()
    fn = QAFeaturizer(tokenizer, max_length, stride)
    key = [columns, vocab, type(fn).__name__, max_length, stride]
    return cached_map(fn, raw, key, cache_dir)


# -- the kind ------------------------------------------------------------------------------
class QAKind(TaskKind):
    name = "qa"
    schema = QATaskConfig
    pseudo_labels = False  # no label probabilities
    roles = ("id", "question", "context", "answers")
    label_role = "answers"
    out_format = "jsonl"  # mtfsl-predict's default
    onnx_outputs = ("start_logits", "end_logits")  # AutoModelForQuestionAnswering's
    # which tokens are context, and their character offsets in it
    pad_values: ClassVar[dict[str, int]] = {"context_mask": 0, "offset_start": -1, "offset_end": -1}

    def columns(self, key: str, task: QATaskConfig) -> dict[str, Any]:
        from mtfsl.data.readers.base import Column

        return {
            role: Column(f"{key}.{role}_column", getattr(task, f"{role}_column"), role)
            for role in self.roles
        }

    def validate(self, key: str, task: QATaskConfig) -> None:
        for field in ("labels", "labels_file", "label_names", "label_map"):
            if getattr(task, field):
                raise ConfigError(f"{key}.{field}: a question-answering task has no label set")
        if task.max_length is not None and task.max_length < 32:
            raise ConfigError(f"{key}.max_length={task.max_length}: expected >= 32 or null")
        for field in ("max_answer_length", "n_best"):
            if getattr(task, field) < 1:
                raise ConfigError(f"{key}.{field}={getattr(task, field)}: expected >= 1")
        if task.stride < 0 or (task.max_length and task.stride >= task.max_length // 2):
            raise ConfigError(
                f"{key}.stride={task.stride}: expected >= 0 and < half of {key}.max_length "
                "(so each window adds new context)"
            )

    def metric_names(self, task: Any) -> frozenset[str]:
        return frozenset({"exact_match", "f1"})

    def default_metric(self, task: Any) -> str:
        return "f1"

    # -- data ----------------------------------------------------------------------------
    def to_split(self, records: Any, task: QATaskConfig) -> Split:
        questions, answers, lines = [], [], []
        seen: dict[str, str] = {}  # id -> where it was first found
        for record in records.rows:
            where = records.at(record)
            values = record.values
            for role in ("question", "context"):
                if not isinstance(values[role], str) or not visible(values[role]):
                    raise DataError(
                        f"{where}: expected a non-empty {role}, found {values[role]!r:.80}"
                    )
            qid = _question_id(values["id"], where)
            if qid in seen:  # predictions and the official scorer are keyed by id
                raise DataError(
                    f"{where}: question id {qid!r} is also the id of {seen[qid]}; ids must be "
                    "unique within a file"
                )
            seen[qid] = where
            question = Question(qid, values["question"].lstrip(), values["context"])
            questions.append(question)
            answers.append(self._answers(values["answers"], question, f"{where} (id {qid})"))
            lines.append(record.line)
        return Split(records.path, questions, answers, lines, rows=records.by_row)

    @staticmethod
    def _answers(value: Any, question: Question, where: str) -> list[tuple[str, int]]:
        """(text, start) per reference answer; each must be the context's text at start."""
        if isinstance(value, dict):  # the Hugging Face squad layout
            value = [
                {"text": t, "answer_start": s}
                for t, s in zip(value.get("text", []), value.get("answer_start", []), strict=False)
            ]
        if not isinstance(value, list) or not value:
            raise DataError(f"{where}: expected a non-empty list of answers, found {value!r:.80}")
        out = []
        for answer in value:
            text = answer.get("text") if isinstance(answer, dict) else None
            start = answer.get("answer_start") if isinstance(answer, dict) else None
            if not isinstance(text, str) or not isinstance(start, int) or not text:
                raise DataError(f"{where}: expected {{text, answer_start}}, found {answer!r:.80}")
            if question.context[start : start + len(text)] != text:
                found = question.context[start : start + len(text)]
                raise DataError(
                    f"{where}: answer {text!r:.60} is not the context's text at "
                    f"answer_start={start} (found {found!r:.60})"
                )
            out.append((text, start))
        return out

    def derive_labels(self, task: Any, train: Split) -> list[str]:
        return list(SPAN_OUTPUTS)

    def labelled(self, split: Split):
        return iter(())  # answers are spans, not labels of a label set

    def label_counts(self, split: Split) -> dict[str, int]:
        return {"questions": len(split)}

    def samplers(self, task: Any) -> frozenset[str]:
        return frozenset({"random"})

    def default_sampler(self, task: Any) -> str | None:
        return "random"

    # -- model ---------------------------------------------------------------------------
    def head(self, task: QATaskConfig, hidden, num_labels, dropout, context) -> nn.Module:
        from mtfsl.model.heads import SpanHead

        return SpanHead(hidden, task.max_answer_length, task.n_best)

    def label_ids(self, split: Split, labels: list[str]) -> list[Any]:
        return list(split.targets)

    def features(self, split, task, name, labels, tokenizer, model, cache_dir):
        max_length = task.max_length or model.max_length
        if task.stride >= max_length // 2:
            raise ConfigError(
                f"task.{name}.stride={task.stride}: expected < half the window "
                f"({max_length} sub-tokens), so each window adds new context"
            )
        self._check_questions(split, tokenizer, max_length - task.stride - 3, name)
        feats = featurize_questions(split, tokenizer, max_length, task.stride, cache_dir)
        if len(feats) > len(split):
            log.info(
                "%s: %d questions in %d windows of %d sub-tokens (stride %d)",
                split.path,
                len(split),
                len(feats),
                max_length,
                task.stride,
            )
        return feats

    @staticmethod
    def _check_questions(split: Split, tokenizer: Any, room: int, name: str) -> None:
        """A question must leave room for context in every window (else the tokenizer fails
        deep inside); name the first that does not."""
        lengths = tokenizer([q.question for q in split.inputs], add_special_tokens=False)
        for i, ids in enumerate(lengths["input_ids"]):
            if len(ids) >= room:
                raise DataError(
                    f"{split.at(i)}: question {split.inputs[i].id} has {len(ids)} sub-tokens, "
                    f"too long for windows of task.{name}.max_length with stride"
                )

    # -- evaluation ----------------------------------------------------------------------
    def owned(self, batch, ids: Any) -> np.ndarray:
        """(question, char start, char end, score) for each window's candidate spans."""
        import torch

        n = ids.shape[1]
        question = batch["sentence"].double()[:, None, None].expand(-1, n, 1)
        return torch.cat([question, ids.double()], dim=-1).flatten(0, 1).cpu().numpy()

    def collect(self, task: QATaskConfig, rows: np.ndarray, split: Split) -> list[Any]:
        """Per question, its best spans over all its windows (a span seen in two windows
        counts once, with its better score)."""
        spans: list[dict[tuple[int, int], float]] = [{} for _ in split.inputs]
        for question, first, last, score in rows:
            if np.isfinite(score):
                key, found = (int(first), int(last)), spans[int(question)]
                found[key] = max(score, found.get(key, -np.inf))
        answers = []
        for q, found in zip(split.inputs, spans, strict=True):
            if not found:
                raise RuntimeError(f"{split.path}: question {q.id} received no prediction")
            best = sorted(found.items(), key=lambda item: -item[1])[: task.n_best]
            nbest = tuple((q.context[a:b], a, float(s)) for (a, b), s in best)
            answers.append(Answer(*nbest[0], nbest))
        return answers

    def to_labels(self, task: Any, ids: list[Any], labels: list[str]) -> list[Any]:
        return list(ids)

    def decision(self, pred: Answer) -> Any:
        return pred.text, pred.start

    def score(self, task: Any, gold, pred, mode: MetricMode) -> dict:
        return squad_scores([[text for text, _ in refs] for refs in gold], [p.text for p in pred])

    def report(self, task, split, name, gold, pred, labels, mode) -> str:
        s = self.score(task, gold, pred, mode)
        refs = [[text for text, _ in r] for r in gold]
        f1s = [max(token_f1(p.text, r) for r in rs) for p, rs in zip(pred, refs, strict=True)]
        buckets = collections.Counter(
            "F1 = 100" if f == 1 else "F1 = 0" if f == 0 else "0 < F1 < 100" for f in f1s
        )
        lines = [
            f"# {split} / {name}: {len(gold)} questions, {sum(map(len, refs))} reference answers",
            "",
            f"exact match {s['exact_match']:.2f}  F1 {s['f1']:.2f} (official SQuAD v1.1 "
            "normalisation, max over references)",
            "",
            *(f"{k:>14}: {buckets[k]} questions" for k in ("F1 = 100", "0 < F1 < 100", "F1 = 0")),
        ]
        return "\n".join(lines) + "\n"

    def write_predictions(self, path: Path, split: Split, pred: list[Any]) -> None:
        ids = [q.id for q in split.inputs]
        answers = {qid: p.text for qid, p in zip(ids, pred, strict=True)}
        atomic_write(path.with_name(f"{path.name}.json"), json.dumps(answers, ensure_ascii=False))
        nbest = {
            qid: [{"text": t, "start": a, "score": s} for t, a, s in p.nbest]
            for qid, p in zip(ids, pred, strict=True)
        }
        atomic_write(
            path.with_name(f"{path.name}.nbest.json"), json.dumps(nbest, ensure_ascii=False)
        )

    # -- export and prediction -----------------------------------------------------------
    def export_model(self, task, name, head, encoder, config):
        from transformers import AutoModelForQuestionAnswering

        model = AutoModelForQuestionAnswering.from_config(config)
        model.qa_outputs.load_state_dict(head.qa_outputs.state_dict())
        return model

    def scores_from_outputs(self, outputs: list[np.ndarray]) -> torch.Tensor:
        import torch

        start, end = (torch.from_numpy(o) for o in outputs)
        return torch.stack([start, end], dim=-1)  # the head's (batch, tokens, 2)

    def placeholder(self, item: Any, labels: list[str]) -> Any:
        return []

    def raw_input(self, line: str, split_words: Any) -> tuple[Any, list[tuple[int, int]]]:
        question, tab, context = line.partition("\t")
        if not tab or not visible(question) or not visible(context):
            raise DataError("expected a question and its context separated by a tab")
        return Question("", question.lstrip(), context), []

    def input_of(self, values: dict[str, Any]) -> tuple[Any, str, list[tuple[int, int]]]:
        for role in ("question", "context"):
            if not isinstance(values[role], str) or not visible(values[role]):
                raise DataError(f"expected a non-empty {role}, found {values[role]!r:.80}")
        question = Question(
            str(values.get("id", "")), values["question"].lstrip(), values["context"]
        )
        return question, question.question, []

    def prediction_record(self, example: Any, pred: Any, prob: Any = None) -> dict[str, Any]:
        q = example.item
        return {
            "id": q.id,
            "question": q.question,
            "answer": pred.text,
            "start": pred.start,
            "score": pred.score,
        }

    def tsv_fields(self, example: Any, pred: Any) -> list[str]:
        return [example.item.question, pred.text]


register_kind(QAKind())
