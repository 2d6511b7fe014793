"""``few_shot.method=icl``: in-context learning. Nothing trains: every dev and test example is
put into its task's prompt after demonstrations from the K-shot draw (the same draw a
fine-tuning run of the same seed trains on, recorded in ``few_shot/TASK.json``), and the
language model's likelihood of each label's words (or its generated answer) gives the
prediction. The demonstrations of
every example are written beside its prediction (``predictions/SPLIT_TASK.icl.jsonl``), so a
result can be audited and rerun exactly.

How a kind's examples are scored is a ``Scorer`` registered by kind name: label likelihood
serves the classification and pair kinds, span generation (``icl/spans.py``) entity tagging.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy.special import log_softmax

from mtfsl.config import Attention, DemoSelection, LikelihoodScore, TrainConfig
from mtfsl.errors import ConfigError
from mtfsl.icl.answers import AnswerGeneration, NumberGeneration
from mtfsl.icl.common import IclContext, fitted, progress
from mtfsl.icl.labelsets import LabelSetGeneration
from mtfsl.icl.prompts import Prompter, prompt_config, verbalized
from mtfsl.icl.spans import SpanGeneration
from mtfsl.methods import JobStart, MethodResult
from mtfsl.plugins import Registry

log = logging.getLogger("mtfsl")


@dataclass
class Demonstrations:
    """A task's demonstration pool (the K-shot training draw), rendered once."""

    texts: list[str]  # each pool example as a demonstration
    lines: list[int]  # where each came from in the training file
    seed: int
    keys: list[str] = field(default_factory=list)  # what SIMILAR compares, per pool example
    targets: list[Any] = field(default_factory=list)  # the pool's gold answers
    ranking: np.ndarray | None = None  # SIMILAR: per evaluation example, least similar first
    shots: int | None = None  # how many are offered per example (icl.shots); None: all
    _lengths: list[int] | None = field(default=None, repr=False)

    def order(self, selection: DemoSelection, example: int) -> list[int]:
        """Pool indices for evaluation example ``example``, farthest from the query first."""
        if selection is DemoSelection.SIMILAR:
            assert self.ranking is not None, "rank() the split first"
            return self._nearest([int(i) for i in self.ranking[example]])
        seed = self.seed if selection is DemoSelection.FIXED else self.seed + 1 + example
        order = [int(i) for i in np.random.default_rng(seed).permutation(len(self.texts))]
        return self._nearest(order)

    def _offered(self) -> int:
        """How many demonstrations an example is offered (``icl.shots``, else the pool)."""
        return len(self.texts) if self.shots is None else min(self.shots, len(self.texts))

    def _nearest(self, order: list[int]) -> list[int]:
        """``icl.shots``: only the last (nearest) ones of an order are offered."""
        return order[len(order) - self._offered() :]

    def token_lengths(self, tokenizer: Any) -> list[int]:
        """Each demonstration's length in tokens on its own (computed once)."""
        if self._lengths is None:
            ids = tokenizer(self.texts, add_special_tokens=False)["input_ids"]
            self._lengths = [len(i) for i in ids]
        return self._lengths

    def shown(self, chosen: list[int], prefix: list[int]) -> dict[str, Any]:
        """What an example's record says of its prompt: the demonstrations' training lines,
        how many were dropped to fit, its length in tokens."""
        lines = [self.lines[j] for j in chosen]
        return {
            "demonstrations": lines,
            "dropped": self._offered() - len(chosen),
            "prompt_tokens": len(prefix),
        }

    def rank(self, retriever: str, examples: list[str]) -> None:
        """SIMILAR: order the pool for each of ``examples`` by the cosine of their sentence
        embeddings (``few_shot.icl.retriever``)."""
        from mtfsl.icl.retrieval import similarity_ranking

        self.ranking = similarity_ranking(retriever, self.keys, examples)


class Scorer(Protocol):
    """How one kind's examples are predicted in context."""

    name: str

    def fields(self, example: Any) -> dict[str, Any]:
        """An example's template fields (``text``, ...)."""
        ...

    def answer(self, example: Any, target: Any, prompter: Prompter) -> str:
        """A demonstration's answer: what the model should write for ``target``."""
        ...

    def key(self, example: Any) -> str:
        """What SIMILAR selection compares of an example (its text, a pair's two texts, a
        question without its passage)."""
        ...

    def for_task(self, task: Any) -> Scorer:
        """The scorer for this task's settings (a tagging task: spans or per-word tags)."""
        ...

    def predict(
        self, ctx: IclContext, prompter: Prompter, demos: Demonstrations, split: Any, labels
    ) -> tuple[list[Any], list[dict[str, Any]]]:
        """Predicted labels of ``split`` and one record per example (demonstrations, scores)."""
        ...


SCORERS: Registry[Scorer] = Registry("an in-context scorer of a task kind")


class LabelLikelihood:
    """Classification and pairs: each label's verbalizer words scored as the prompt's
    continuation; the highest (``icl.score``: sum or per byte) is the prediction. With
    ``icl.calibrate``, contextual calibration (Zhao et al. 2021): the label distribution the
    same prompt gives content-free inputs divides it out."""

    name = "label_likelihood"

    def __init__(self, pair: bool = False) -> None:
        self.pair = pair  # examples are text pairs (a content-free input fills both)

    def fields(self, example: Any) -> dict[str, Any]:
        if self.pair:
            first, second = example
            return {"text": first, "text_a": first, "text_b": second}
        return {"text": example}

    def answer(self, example: Any, target: Any, prompter: Prompter) -> str:
        return verbalized(prompter.cfg, [target])[0]

    def key(self, example: Any) -> str:
        return " ".join(example) if self.pair else example

    def for_task(self, task: Any) -> LabelLikelihood:
        return self

    def predict(self, ctx, prompter, demos, split, labels):
        from mtfsl.icl.scoring import PrefixScorer

        words = [prompter.continuation(w) for w in verbalized(prompter.cfg, labels)]
        scorer = PrefixScorer(ctx.model, ctx.cfg.batch_size)
        baselines: dict[tuple[int, ...], np.ndarray] = {}  # per demonstration order
        preds, records = [], []
        for i, example in enumerate(progress(split.inputs, split)):
            order = demos.order(ctx.cfg.selection, i)
            fields = self.fields(example)
            prefix, conts, chosen = fitted(ctx, prompter, demos, order, fields, words, split.at(i))
            ranked, record = self._scores(ctx, scorer, prefix, conts, words)
            if ctx.cfg.calibrate:
                key = tuple(chosen)
                if key not in baselines:
                    baselines[key] = self._content_free(ctx, scorer, prompter, demos, chosen, words)
                ranked = log_softmax(np.asarray(ranked)) - baselines[key]
                record["calibrated"] = dict(zip(labels, ranked.tolist(), strict=True))
            preds.append(labels[int(np.argmax(ranked))])
            records.append({**demos.shown(chosen, prefix), **_by_label(record, labels)})
        return preds, records

    @staticmethod
    def _scores(ctx, scorer, prefix, conts, words) -> tuple[list[float], dict[str, Any]]:
        """The ranking scores (``icl.score``) and both scores of every label."""
        from mtfsl.icl.scoring import byte_normalised, continuation_logprobs

        if ctx.cfg.reuse_prefix:
            sums = scorer.score(prefix, conts)
        else:
            sums = continuation_logprobs(ctx.model, prefix, conts, reuse_prefix=False)
        norms = [byte_normalised(s, w) for s, w in zip(sums, words, strict=True)]
        ranked = sums if ctx.cfg.score is LikelihoodScore.SUM else norms
        return ranked, {"logprob": sums, "logprob_per_byte": norms}

    def _content_free(self, ctx, scorer, prompter, demos, chosen, words) -> np.ndarray:
        """log p_cf: the mean label distribution of the content-free inputs, each in the same
        prompt (both texts of a pair content-free)."""
        from mtfsl.icl.scoring import encode

        dists = []
        shown = [demos.texts[j] for j in chosen]
        for text in ctx.cfg.content_free:
            example = (text, text) if self.pair else text
            prompt = prompter.prompt(shown, prompter.query(self.fields(example)), ctx.tokenizer)
            prefix, conts = encode(ctx.tokenizer, prompt, words)
            ranked, _ = self._scores(ctx, scorer, prefix, conts, words)
            dists.append(np.exp(log_softmax(np.asarray(ranked))))
        return np.log(np.mean(dists, axis=0))


def _by_label(record: dict[str, Any], labels: list[str]) -> dict[str, Any]:
    return {
        key: dict(zip(labels, values, strict=True)) if isinstance(values, list) else values
        for key, values in record.items()
    }


def _plain(value: Any) -> Any:
    """A prediction object (a QA answer) as JSON."""
    import dataclasses

    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else str(value)


def _uncalibrated(records: list[dict[str, Any]], score: LikelihoodScore) -> list[str]:
    """The predictions the same label scores give without calibration."""
    key = "logprob" if score is LikelihoodScore.SUM else "logprob_per_byte"
    return [max(r[key], key=r[key].get) for r in records]


SCORERS["tagging"] = SpanGeneration()
SCORERS["qa"] = AnswerGeneration()
SCORERS["regression"] = NumberGeneration()
SCORERS["multilabel"] = LabelSetGeneration()
SCORERS["classification"] = LabelLikelihood()
SCORERS["pair"] = LabelLikelihood(pair=True)


def demonstrations(
    prompter: Prompter, scorer: Scorer, data: Any, seed: int, shots: int | None = None
) -> Demonstrations:
    """The training split (the K-shot draw) as demonstrations, in the task's prompt."""
    pool = data.splits["train"]
    pairs = zip(pool.inputs, pool.targets, strict=True)
    texts = [
        prompter.demonstration(scorer.fields(x), scorer.answer(x, y, prompter)) for x, y in pairs
    ]
    keys = [scorer.key(x) for x in pool.inputs]
    return Demonstrations(texts, pool.lines, seed, keys, list(pool.targets), shots=shots)


class InContextLearning:
    """``few_shot.method=icl``."""

    name = "icl"
    trains = resumable = False

    def check(self, cfg: TrainConfig) -> None:
        if cfg.few_shot.k is None:
            raise ConfigError(
                "few_shot.method=icl: set few_shot.k (the demonstrations are the K-shot draw "
                "of the training split; few_shot.k=0 for none)"
            )
        if cfg.model.family == "encoder":
            raise ConfigError(
                f"few_shot.method=icl: model.name_or_path={cfg.model.name_or_path} is an "
                "encoder; in-context learning needs a decoder language model (model=smollm2)"
            )
        if cfg.model.attention is Attention.BIDIRECTIONAL:
            raise ConfigError(
                "few_shot.method=icl: model.attention=BIDIRECTIONAL; a language model predicts "
                "the next token with causal attention"
            )
        for name, task in cfg.task.items():
            if task.kind not in SCORERS:
                raise ConfigError(
                    f"task.{name}.kind={task.kind}: few_shot.method=icl scores the kinds "
                    f"{sorted(SCORERS)} so far"
                )
            if name not in cfg.prompt:
                raise ConfigError(
                    f"prompt.{name}: few_shot.method=icl needs a prompt for task {name} "
                    f"(shipped: {sorted(cfg.prompt)}); add +prompt.{name}={{query: ..., "
                    "verbalizer: {...}} or a prompt file in your config folder"
                )
            Prompter(f"prompt.{name}", prompt_config(name, cfg.prompt[name]))  # checked now

    def run(self, start: JobStart) -> MethodResult:
        from accelerate.utils import set_seed

        from mtfsl.model.encoder import build_causal_lm

        cfg = start.cfg
        set_seed(cfg.seed)  # a tiny random model's weights
        model, tokenizer = build_causal_lm(cfg.model)
        model.to(start.accelerator.device)
        window = cfg.few_shot.icl.max_length or model.config.max_position_embeddings
        ctx = IclContext(model, tokenizer, cfg.few_shot.icl, window)
        seeds = (cfg.few_shot.icl.order_seed, cfg.few_shot.seed, cfg.seed)
        seed = next(s for s in seeds if s is not None)
        metrics: dict[str, Any] = {}
        for name, task in start.tasks.items():
            data = start.data[name]
            prompter = Prompter(f"prompt.{name}", prompt_config(name, cfg.prompt[name]))
            scorer = SCORERS[task.kind.name].for_task(task.cfg)
            demos = demonstrations(prompter, scorer, data, seed, cfg.few_shot.icl.shots)
            for split_name, split in data.splits.items():
                if split_name == "train":
                    continue
                began = time.perf_counter()
                if cfg.few_shot.icl.selection is DemoSelection.SIMILAR:
                    demos.rank(cfg.few_shot.icl.retriever, [scorer.key(x) for x in split.inputs])
                pred, records = scorer.predict(ctx, prompter, demos, split, data.labels)
                seconds = time.perf_counter() - began
                scores = task.kind.score(task.cfg, split.targets, pred, cfg.metrics.mode)
                metrics.update({f"{split_name}/{name}/{k}": v for k, v in scores.items()})
                if records and "calibrated" in records[0]:  # both sides of calibration
                    raw = _uncalibrated(records, cfg.few_shot.icl.score)
                    before = task.kind.score(task.cfg, split.targets, raw, cfg.metrics.mode)
                    metrics.update(
                        {f"{split_name}/{name}/uncalibrated_{k}": v for k, v in before.items()}
                    )
                dropped = sum(r["dropped"] for r in records)
                metrics[f"{split_name}/{name}/demonstrations_dropped"] = dropped
                if records and "parse_failures" in records[0]:  # generated answers
                    failures = sum(len(r["parse_failures"]) for r in records)
                    metrics[f"{split_name}/{name}/parse_failures"] = failures
                if records and "in_context" in records[0]:  # generated extractive answers
                    outside = sum(not r["in_context"] for r in records)
                    metrics[f"{split_name}/{name}/answers_not_in_context"] = outside
                metrics[f"time/eval_{split_name}_seconds"] = seconds
                if start.accelerator.is_main_process:
                    self._write(start, split_name, task, data.labels, split, pred, records)
                log.info(
                    "%s %s: %s (%d examples, %.1f s; %d demonstrations dropped to fit)",
                    split_name,
                    name,
                    " ".join(f"{k} {v:.2f}" for k, v in scores.items()),
                    len(split),
                    seconds,
                    dropped,
                )
        return MethodResult(metrics)

    @staticmethod
    def _write(start, split_name, task, labels, split, pred, records) -> None:
        from mtfsl.evaluation.report import atomic_write

        kind, name, mode = task.kind, task.name, start.cfg.metrics.mode
        folder = start.run_dir
        report = kind.report(task.cfg, split_name, name, split.targets, pred, labels, mode)
        atomic_write(folder / "reports" / f"{split_name}_{name}.txt", report)
        kind.write_predictions(folder / "predictions" / f"{split_name}_{name}", split, pred)
        lines = [
            json.dumps(
                {"line": split.lines[i], "gold": split.targets[i], "pred": pred[i], **r},
                default=_plain,
            )
            for i, r in enumerate(records)
        ]
        path = folder / "predictions" / f"{split_name}_{name}.icl.jsonl"
        atomic_write(path, "".join(line + "\n" for line in lines))
