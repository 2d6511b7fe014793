"""One job: read every task's data (few-shot draws, augmentation, limits), learn from it by the
few-shot method (``finetune``: build the model, train, evaluate the best checkpoint; ``icl``:
prompt a language model), and write the run folder's results. ``mtfsl-train``
(``mtfsl.train``) composes and checks the config and hands it here; scripts and tests call
``run`` directly."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from mtfsl.config import DataConfig, TrainConfig
from mtfsl.data.splits import TaskData, data_root, load_task
from mtfsl.errors import ConfigError, MtfslError
from mtfsl.evaluation.report import atomic_write, write_json
from mtfsl.icl.method import InContextLearning
from mtfsl.methods import JobStart, MethodResult, method_named, register_method
from mtfsl.resolve import Task, resolve_tasks, settle
from mtfsl.self_training import pool_for, self_train
from mtfsl.utils.console import library_bars

# torch, transformers, accelerate and datasets are imported inside the functions that run a
# job, so importing this module (as mtfsl-train's --help does) stays fast.

log = logging.getLogger("mtfsl")


class JobInterrupted(MtfslError):
    """SIGINT/SIGTERM outside the training steps (reading, tokenising, evaluating)."""


def _rewriters(cfg: TrainConfig) -> dict[str, Any]:
    """The batch rewriters the configured augmentation methods need (each model built once
    for every task of the run)."""
    from mtfsl.data.augment import BACK_TRANSLATION, PARAPHRASE, method_names

    methods, aug, out = method_names(cfg.augmentation.methods), cfg.augmentation, {}
    if BACK_TRANSLATION in methods:
        from mtfsl.data.backtranslate import BackTranslator

        translate = BackTranslator(aug.back_translation)
        out[BACK_TRANSLATION] = lambda texts, targets, seed: translate(texts, seed)
    if PARAPHRASE in methods:
        from mtfsl.icl.paraphrase import Paraphraser

        out[PARAPHRASE] = Paraphraser(aug.paraphrase, cfg.data.cache_dir)
    return out


def _augment(task: Task, data: TaskData, cfg: TrainConfig, rewriters, run_dir: Path | None) -> None:
    """Replace the task's training split by itself plus its augmented copies."""
    aug, name, kind = cfg.augmentation, task.name, task.kind
    seed = cfg.seed if aug.seed is None else aug.seed
    train = data.splits["train"]
    from mtfsl.data.augment import check_methods, method_names

    check_methods(aug.methods, kind, task.cfg, name)
    augmented, counts = kind.augment(train, aug, seed, rewriters)
    data.splits["train"] = augmented
    log.info(
        "augmentation %s: %d -> %d training examples %s", name, len(train), len(augmented), counts
    )
    if run_dir is not None:
        record = {
            "methods": method_names(aug.methods),
            **{"copies": aug.copies, "p": aug.p, "seed": seed, "counts": counts},
            **{"before": len(train), "after": len(augmented)},
        }
        write_json(run_dir / "augmentation" / f"{name}.json", record)
        made = [  # every new example beside the training line it was made from
            json.dumps({"source_line": augmented.lines[i], "input": augmented.inputs[i]})
            for i in range(len(train), len(augmented))
        ]
        atomic_write(run_dir / "augmentation" / f"{name}.jsonl", "".join(m + "\n" for m in made))


def load_data(
    cfg: TrainConfig, tasks: dict[str, Task], run_dir: Path | None
) -> dict[str, TaskData]:
    """Every task's splits: few-shot version when ``few_shot.k`` is set, training split
    augmented when ``augmentation.methods`` are. What was drawn and made is recorded under
    ``run_dir/few_shot/`` and ``run_dir/augmentation/``."""
    from mtfsl.pipeline.fewshot import apply_few_shot

    aug = cfg.augmentation
    rewriters = _rewriters(cfg) if aug.methods else {}
    out = {}
    for name, task in tasks.items():
        full = load_task(task, cfg.data)
        root = data_root(cfg.data) if cfg.data.root is not None else None
        data, record = apply_few_shot(full, task, cfg.few_shot, cfg.seed, root)
        if record is not None and run_dir is not None:
            write_json(run_dir / "few_shot" / f"{name}.json", record)
        pool_for(data, full.splits["train"], task, cfg)
        if aug.methods:
            _augment(task, data, cfg, rewriters, run_dir)
        _limit(data, cfg.data)
        out[name] = data
    return out


def _check_something_to_evaluate(data: dict[str, TaskData]) -> None:
    """A run whose tasks have no dev or test example would train, score nothing and report
    success with empty metrics: it stops before training instead."""
    if any(len(d.splits.get(s) or ()) for d in data.values() for s in ("dev", "test")):
        return
    name = next(iter(data))
    found = ", ".join(f"{n}: {sorted(d.splits)}" for n, d in data.items())
    raise ConfigError(
        f"nothing to evaluate: no task has a dev or test split ({found}); give one a test "
        f"or dev file (task.{name}.files.test=..., or the reader's split) or carve a dev set "
        f"from its training data with task.{name}.dev_fraction=0.1"
    )


def _limit(data: TaskData, cfg: DataConfig) -> None:
    """``data.limit_train`` / ``limit_eval``: keep the first examples of each split, or
    (``data.limit_seed``) a seeded draw of them in file order."""
    import numpy as np

    for split, examples in list(data.splits.items()):
        limit = cfg.limit_train if split == "train" else cfg.limit_eval
        if limit is None or len(examples) <= limit:
            continue
        ids = list(range(limit))
        if cfg.limit_seed is not None:
            rng = np.random.default_rng(cfg.limit_seed)
            ids = sorted(int(i) for i in rng.choice(len(examples), limit, replace=False))
        data.splits[split] = examples.subset(ids)
        log.warning(
            "%s %s: %s %d of %d examples only (data.limit_%s): its scores are not the "
            "task's (on the whole split)",
            data.name,
            split,
            "the first" if cfg.limit_seed is None else f"a draw (seed {cfg.limit_seed}) of",
            limit,
            len(examples),
            "train" if split == "train" else "eval",
        )


def _start(cfg: TrainConfig, run_dir: Path, resume: bool, accelerator: Any) -> dict[str, Any]:
    """A new run's folder (``config.yaml``, a new attempt) and its trackers; returns the
    config as the trackers' parameters."""
    from mtfsl.training import tracking
    from mtfsl.training.run_folder import start_attempt

    if not resume and accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        config_yaml = OmegaConf.to_yaml(OmegaConf.structured(cfg))
        start_attempt(run_dir, config_yaml)  # moves an earlier attempt's states aside
        atomic_write(run_dir / "config.yaml", config_yaml)
    accelerator.wait_for_everyone()  # every process reads the attempt the main one started
    params = OmegaConf.to_container(OmegaConf.structured(cfg), enum_to_str=True)
    tracking.start(accelerator, cfg.tracking, run_dir, params)
    if resume and cfg.few_shot.self_training.rounds:
        raise ConfigError(
            "resume: a self-training run (few_shot.self_training.rounds > 0) cannot be resumed "
            "(its teacher and students share the run folder's states); start it again"
        )
    return params


def _builder(cfg: TrainConfig, tasks: dict[str, Task], labels: dict, accelerator: Any):
    """A function that builds the run's model afresh (seeded): once for training, and again
    for each self-training student."""
    from accelerate.utils import set_seed

    from mtfsl.model.dropout import use_fast_dropout
    from mtfsl.pipeline.build import build_model

    def build():
        set_seed(cfg.seed)
        model, tokenizer, counts = build_model(cfg, tasks, labels)
        if cfg.hardware.fast_dropout:
            use_fast_dropout(model)
        if cfg.hardware.compile:  # in place, so parameter names (and checkpoints) stay the same
            model.encoder.compile(dynamic=True)
        if accelerator.num_processes > 1:  # same weights everywhere, different dropout masks
            set_seed(cfg.seed, device_specific=True)
        return model, tokenizer, counts

    return build


def _prepare(cfg: TrainConfig, tasks: dict[str, Task], data: dict, tokenizer, accelerator):
    """Every task's features; the main process fills the tokenisation cache, then the others
    read it."""
    from mtfsl.pipeline.prepare import prepare_task

    with accelerator.main_process_first():
        prepared = {name: prepare_task(tasks[name], d, cfg, tokenizer) for name, d in data.items()}
    for task in prepared.values():
        log.info(
            "task %s: %d labels, %d train examples -> %d rows",
            task.name,
            len(task.labels),
            len(task.train_split),
            len(task.train),
        )
    return prepared


def _final_scores(trainer: Any, step: int, run_dir: Path) -> tuple[dict[str, Any], dict]:
    """The best checkpoint's dev and test scores, reports and predictions (its dev evaluation
    reused: same weights, same scores), with their times; and the best checkpoint's record."""
    from mtfsl.training.loop import TrainingInterrupted

    try:
        best = trainer.restore_best()
        metrics: dict[str, Any] = {}
        for split in ("dev", "test"):
            start = time.perf_counter()
            if split == "dev" and trainer.best_dev is not None:
                results, predictions = trainer.best_dev
                metrics.update(results)
                trainer.write_outputs("dev", predictions)
                trainer.predict_seconds = 0.0
            else:
                metrics.update(trainer.evaluate(split, write=True))
            metrics[f"time/eval_{split}_seconds"] = time.perf_counter() - start  # + files
            metrics[f"time/predict_{split}_seconds"] = trainer.predict_seconds
    except JobInterrupted as err:  # training is complete: keep it, resume only evaluates
        trainer.save_state()
        raise TrainingInterrupted(
            f"{err} during the final evaluation (training complete at step {step}); "
            f"state saved. Resume with: mtfsl-train resume={run_dir}"
        ) from None
    if (score := trainer.selection_score(metrics)) is not None:
        metrics["dev/selection_score"] = score  # the model-selection metric, for sweeps
    return metrics, best


def _training_record(trainer: Any, state: Any, best: dict, accelerator: Any) -> dict[str, Any]:
    """What the training did: steps, tokens, padding, time, examples, processes, memory."""
    from mtfsl.utils.memory import peak_memory_mb

    tokens, seconds = state.train_tokens, state.train_seconds
    return {
        "train/steps": state.step,
        "train/best_step": best["step"],
        "train/tokens": tokens,
        "train/padding_fraction": 1 - tokens / max(state.train_positions, 1),
        "train/attention_positions": state.train_attention,
        "train/skipped_steps": state.skipped_steps,
        "time/train_seconds": seconds,
        "time/train_tokens_per_second": tokens / max(seconds, 1e-9),
        **{f"train/{n}/examples": len(t.train_split) for n, t in trainer.tasks.items()},
        **peak_memory_mb(),
        "train/processes": accelerator.num_processes,
    }


def _finish(cfg: TrainConfig, run_dir: Path, accelerator: Any, params: dict, result: Any):
    """Log the final scores to the trackers; write metrics.json and dev_history.json."""
    from mtfsl.training import tracking

    metrics = result.metrics
    # dev curves were logged during training; the final dev scores are the best checkpoint's
    final = {(k if k.startswith("test/") else f"best/{k}"): v for k, v in metrics.items()}
    accelerator.log(final, step=result.step)
    # Not accelerator.end_training(): it destroys the process group, which the next job of a
    # sweep needs (process_group_teardown destroys it when the process exits).
    accelerator.wait_for_everyone()
    tracking.finish(accelerator, cfg.tracking, params, final)
    if accelerator.is_main_process:
        write_json(run_dir / "metrics.json", metrics)
        write_json(run_dir / "dev_history.json", {"history": result.history})
    log.info(
        "test: %s", " ".join(f"{k} {v:.2f}" for k, v in metrics.items() if k.startswith("test/"))
    )


def run(cfg: TrainConfig, run_dir: Path, resume: bool = False) -> dict[str, Any]:
    """Read the tasks, then learn from them by ``few_shot.method`` (train, or show them in a
    prompt) and evaluate; write metrics.json, reports, predictions (and, training, the best
    checkpoint).

    With ``resume``, continue from ``run_dir``'s latest resumable state instead of step 0.
    """
    cfg = settle(cfg)  # before config.yaml is written: the run folder records the family
    from mtfsl.training import tracking
    from mtfsl.training.loop import build_accelerator

    method = method_named(cfg.few_shot.method)
    method.check(cfg)
    if resume and not method.resumable:
        raise ConfigError(
            f"resume: few_shot.method={method.name} saves no resumable state; run it again"
        )
    accelerator = build_accelerator(
        cfg.hardware,
        cfg.trainer.grad_accum_steps,
        multi_task=len(cfg.task) > 1,
        log_with=tracking.log_with(cfg.tracking),
        project_dir=run_dir,
    )
    library_bars(cfg.trainer.library_progress_bars)
    params = _start(cfg, run_dir, resume, accelerator)
    resolved = resolve_tasks(cfg)
    data = load_data(cfg, resolved, run_dir if accelerator.is_main_process else None)
    _check_something_to_evaluate(data)
    result = method.run(JobStart(cfg, run_dir, resume, accelerator, resolved, data))
    _finish(cfg, run_dir, accelerator, params, result)
    return result.metrics


class FineTuning:
    """``few_shot.method=finetune``: train the model on the examples (the default)."""

    name = "finetune"
    trains = resumable = True

    def check(self, cfg: TrainConfig) -> None:
        if cfg.few_shot.k == 0:
            raise ConfigError(
                f"few_shot.k=0: few_shot.method={self.name} trains, so it needs K >= 1 "
                "(K=0 is for methods without training: few_shot.method=icl)"
            )

    def run(self, start: JobStart) -> MethodResult:
        from mtfsl.pipeline.batches import train_batches
        from mtfsl.training.loop import Trainer

        cfg, run_dir, accelerator = start.cfg, start.run_dir, start.accelerator
        labels = {n: d.labels for n, d in start.data.items()}
        build = _builder(cfg, start.tasks, labels, accelerator)
        model, tokenizer, (trainable, total) = build()
        tasks = _prepare(cfg, start.tasks, start.data, tokenizer, accelerator)
        batches = train_batches(tasks, cfg, tokenizer, accelerator)
        trainer = Trainer(cfg, model, tokenizer, tasks, batches, run_dir, accelerator)
        if start.resume:
            trainer.resume()
        state = trainer.fit()
        rounds: dict[str, float] = {}
        if cfg.few_shot.self_training.rounds:
            trainer.restore_best()  # the teacher
            trainer, state, rounds = self_train(
                cfg, run_dir, accelerator, trainer, tasks, lambda: build()[:2]
            )
        metrics, best = _final_scores(trainer, state.step, run_dir)
        metrics.update(_training_record(trainer, state, best, accelerator))
        metrics.update(rounds)
        metrics["train/trainable_parameters"], metrics["train/parameters"] = trainable, total
        return MethodResult(metrics, state.step, state.history)


register_method(FineTuning())
register_method(InContextLearning())
