"""Self-training with unlabelled in-domain text (``few_shot.self_training``).

Huang et al. (2020) found self-training among the strongest few-shot NER options when
in-domain text is at hand. Each round: the current model (the teacher, first the K-shot
model) labels a pool of unlabelled examples; the examples whose every predicted label has at
least ``threshold`` probability join the K-shot set, and a new model from the pretrained
encoder (the student) trains on both; the student is the next round's teacher and, after the
last round, the run's model. The pool is the task's training split without the K-shot draw,
its labels replaced by placeholders when it is built, so no gold label of the pool is ever
read. Each round's pseudo-label counts go to ``RUN/self_training/round{N}.json``.

Written here: the loop is a few calls into the runner's own pieces (``predict_ids``, the
``Trainer``); no library does this over the runner's task kinds.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mtfsl.config import SelfTrainingConfig, TrainConfig
from mtfsl.data.splits import Split
from mtfsl.evaluation.report import write_json
from mtfsl.resolve import Task

log = logging.getLogger(__name__)
POOL = "pool"  # the name of the unlabelled split among a task's evaluation sets


def unlabelled_pool(
    full: Split, support: Split, kind: Any, labels: list[str], st: SelfTrainingConfig, seed: int
) -> Split:
    """The examples of ``full`` (the training split) that are not in ``support`` (the K-shot
    set), at most ``st.pool`` of them, with placeholder labels in place of their own."""
    taken = {json.dumps(x) for x in support.inputs}
    ids = [i for i, x in enumerate(full.inputs) if json.dumps(x) not in taken]
    if st.pool is not None and st.pool < len(ids):
        ids = sorted(np.random.default_rng(seed).choice(ids, st.pool, replace=False).tolist())
    pool = full.subset(ids)
    return replace(pool, targets=[kind.placeholder(x, labels) for x in pool.inputs])


def select(
    pred: list[Any], probabilities: list[Any], threshold: float
) -> tuple[list[int], list[float]]:
    """The examples whose least probable predicted label reaches ``threshold``, and each
    example's least probability (a word's tag, or the one label of a text)."""
    least = [float(np.min(p)) for p in probabilities]
    return [i for i, p in enumerate(least) if p >= threshold], least


def joined(support: Split, extra: Split) -> Split:
    """The K-shot examples followed by the pseudo-labelled ones. Locations stay with each
    example; the split's path is the K-shot set's (error messages name it)."""
    both = bool(support.docs) and bool(extra.docs)
    with_context = bool(support.context) and bool(extra.context)
    return replace(
        support,
        inputs=support.inputs + extra.inputs,
        targets=support.targets + extra.targets,
        lines=support.lines + extra.lines,
        docs=support.docs + extra.docs if both else [],
        context=support.context + extra.context if with_context else [],
    )


def pseudo_label(trainer: Any, task: Any, threshold: float) -> tuple[Split, dict[str, Any]]:
    """The teacher's (``trainer``'s model) confident labels for the task's pool, and what a
    round's record says of them."""
    from mtfsl.pipeline.evaluate import predict_ids

    pool = task.evals[POOL]
    probs: list[Any] = []
    tc = trainer.cfg.trainer
    args = (trainer.accelerator, trainer.collator, tc.eval_batch_size)
    ids = predict_ids(trainer.net, task.task, pool, *args, probabilities=probs)
    if len(probs) != len(ids):
        raise RuntimeError(f"task {task.name}: its head gave no probabilities to select by")
    pred = task.kind.to_labels(task.cfg, ids, task.labels)
    keep, least = select(pred, probs, threshold)
    chosen = replace(pool.split.subset(keep), targets=[pred[i] for i in keep])
    record = {
        "pool": len(pool.split),
        "kept": len(keep),
        "threshold": threshold,
        "mean_least_probability": float(np.mean(least)) if least else None,
        "label_counts": task.kind.label_counts(chosen),
    }
    return chosen, record


def self_train(
    cfg: TrainConfig,
    run_dir: Path,
    accelerator: Any,
    teacher: Any,
    tasks: dict[str, Any],
    build: Any,
) -> tuple[Any, Any, dict[str, float]]:
    """``rounds`` rounds from the trained K-shot ``teacher`` (a ``Trainer`` with its best
    weights restored). ``build()`` gives a new model and tokenizer from the pretrained
    encoder. Returns the last student's trainer, its training state, and the rounds' counts
    as metrics."""
    from mtfsl.pipeline.batches import train_batches
    from mtfsl.pipeline.prepare import split_features
    from mtfsl.training.loop import Trainer

    st = cfg.few_shot.self_training
    budget = replace(cfg.trainer, max_steps=st.max_steps)
    student_cfg = cfg if st.max_steps is None else replace(cfg, trainer=budget)
    metrics: dict[str, float] = {}
    support = {name: task.train_split for name, task in tasks.items()}  # the K-shot sets
    for n in range(1, st.rounds + 1):
        record: dict[str, Any] = {"round": n, "tasks": {}}
        students = {}
        model, tokenizer = build()
        for name, task in tasks.items():
            chosen, counts = pseudo_label(teacher, task, st.threshold)
            record["tasks"][name] = counts
            train_split = joined(support[name], chosen)  # each round: K-shot + its own
            features = split_features(train_split, task.task, task.labels, tokenizer, cfg)
            students[name] = replace(task, train=features, train_split=train_split)
            metrics[f"self_training/{name}/round{n}/kept"] = counts["kept"]
            log.info(
                "self-training round %d, %s: the teacher labels %d of %d pool examples with "
                "every label at probability >= %.2f; the student trains on %d",
                n,
                name,
                counts["kept"],
                counts["pool"],
                st.threshold,
                len(train_split),
            )
        if accelerator.is_main_process:
            write_json(run_dir / "self_training" / f"round{n}.json", record)
        batches = train_batches(students, student_cfg, tokenizer, accelerator)
        teacher = Trainer(student_cfg, model, tokenizer, students, batches, run_dir, accelerator)
        state = teacher.fit()
        teacher.restore_best()
        tasks = students
    return teacher, state, metrics


def pool_for(data: Any, full: Split, task: Task, cfg: TrainConfig) -> None:
    """Add the unlabelled pool to ``data``'s splits (as ``POOL``) when self-training is on."""
    st = cfg.few_shot.self_training
    if st.rounds:
        support = data.splits["train"]
        data.splits[POOL] = unlabelled_pool(full, support, task.kind, data.labels, st, cfg.seed)
        log.info(
            "self-training %s: a pool of %d unlabelled examples", data.name, len(data.splits[POOL])
        )
